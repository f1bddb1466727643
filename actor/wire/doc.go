// Package wire holds the single protobuf message, Envelope, that phasm
// nodes and clients exchange over protoactor remote. It is generated from
// wire.proto (protoc with protoc-gen-go v1.36.12) and committed, so builds
// need neither tool: regenerate with `make proto` after editing wire.proto.
package wire
