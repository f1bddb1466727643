package cluster_test

import (
	"encoding/binary"

	"github.com/phasm-go/phasm/machine"
)

func appendCRC(body []byte) []byte {
	return binary.LittleEndian.AppendUint32(body, machine.Checksum(body))
}
