// Package load is the bundled load driver behind `phasm load`: it runs a
// seeded workload (bank, dentist or counter) against an embedded single
// node on Pebble (or a running cluster through an actor.Client, see
// cluster.go), measures acknowledged operations
// with an HDR histogram, and ends with a correctness check that reads every
// entity back through queries once the node is quiet.
//
// # What is counted
//
// Every operation is one Ask with its own timeout. Its outcome is
//   - ok: the machine accepted the input and it is durable;
//   - rejected: the machine said no (a *machine.Error such as insufficient
//     funds or a taken slot); the state is unchanged;
//   - failed: a runtime error or a timeout. The input may or may not have
//     been applied.
//
// Latency percentiles are over acknowledged operations (ok and rejected:
// the machine answered). Throughput is acknowledged operations per second
// of the measured phase.
//
// # The client's ledger
//
// The driver keeps, per entity, a lower and an upper bound of what the
// entity must show: an acknowledged input adds to both, a failed one only
// to the upper bound (it may have been applied), a rejected one to
// neither. With --data the ledger is kept in the data directory
// (phasm-load-WORKLOAD.json) and accumulates over runs, so `--verify` can
// check the data later without the run that wrote it.
//
// # The checks
//
//   - bank: no negative balance; nothing held once quiet; each account's
//     totals add up; money conserved (balances + held = deposits -
//     withdrawals); debits equal credits across accounts (each settled
//     transfer credited exactly once); every account's deposits,
//     withdrawals, transfers and credits within the ledger's bounds (an
//     acknowledged transfer lost, or one applied twice, leaves them); and
//     each transfer in an account's Recent ring was sent by this run, with
//     the same accounts and amount, and appears once.
//   - dentist: every clinic's calendar passes clinic.CheckState (no double
//     booking, bookings inside the schedule, aggregates consistent); no
//     request still awaiting payment; every request ended exactly one way;
//     every confirmed booking paid its price; the payment gateway holds
//     exactly the confirmed bookings of this run; requests and
//     cancellations within the ledger's bounds.
//   - counter: every counter's value and increment count within the
//     ledger's bounds (equal to the acknowledged increments when none
//     failed).
package load
