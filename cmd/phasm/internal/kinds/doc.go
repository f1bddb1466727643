// Package kinds is the one place where the phasm binary's machine kinds
// are registered on a node host: the bank account (its credit is the
// runtime's built-in entity-to-entity delivery), the dentist clinic (its
// payments go to a simulated, seeded payment gateway) and the counter.
// `phasm node` and `phasm load` both call Register, so a data directory
// written by one is read by the other with the same kinds and codecs.
//
// It also gives each kind a type-erased Descriptor used at the edges that
// speak JSON or read raw journals: the admin API turns a JSON body into
// the kind's Go input and a state into JSON, and `phasm replay` decodes a
// journal and replays it through the kind's machine, step by step.
//
// Inputs travel as small JSON documents with named values instead of the
// machines' numeric enums, for example
//
//	account: {"kind":"deposit","amount_cents":1000}
//	         {"kind":"transfer","amount_cents":250,"to":"acct-000002","ref":7}
//	clinic:  {"kind":"exact","ref":1,"type":"checkup","day":"Mon","start":"09:30"}
//	         {"kind":"earliest","ref":2,"type":"filling","prefer":{"days":["Wed","Fri"],"ranges":[{"from":"14:00","to":"18:00"}]}}
//	         {"kind":"cancel","ref":1}
//	counter: {"add":5}
//
// Unknown fields are errors. Credits between accounts are never accepted
// from outside: only the runtime delivers them.
package kinds
