package shard

import "github.com/phasm-go/phasm/machine"

func mustEntity(kind, id string) machine.Entity { return machine.Entity{Kind: kind, ID: id} }
