package cluster_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/shard"
)

func TestConfigValidateListsEveryProblem(t *testing.T) {
	cfg := cluster.Config{
		RaftBind:             "0.0.0.0:7000", // needs an advertise address
		AdminBind:            "nonsense",
		Bootstrap:            true,
		Peers:                []cluster.Peer{{ID: "x", RaftAddr: "h:1", AdminAddr: "h:"}},
		Join:                 []string{"no-port"},
		Shards:               shard.MaxShards + 1,
		HeartbeatInterval:    time.Second,
		FailureTimeout:       time.Second,
		RaftElectionTimeout:  100 * time.Millisecond,
		RaftHeartbeatTimeout: 200 * time.Millisecond,
		RPCTimeout:           -time.Second,
		TLS:                  &tls.Config{},
	}
	err := cfg.Validate()
	if !errors.Is(err, cluster.ErrInvalidConfig) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{
		"NodeID is empty", "DataDir is required", "RaftBind \"0.0.0.0:7000\" binds every interface",
		"AdminBind \"nonsense\"", "Bootstrap and Peers are exclusive", "Peers[0] (\"x\"): AdminAddr",
		"Peers does not list this node", "Join[0]", "Shards", "FailureTimeout 1s must be at least twice",
		"RaftHeartbeatTimeout 200ms exceeds RaftElectionTimeout", "RPCTimeout is -1s",
		"TLS has no certificate", "TLS.RootCAs", "TLS.ClientCAs",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing problem %q in:\n%v", want, err)
		}
	}
}

func TestConfigValidateAcceptsMinimal(t *testing.T) {
	cfg := cluster.Config{NodeID: "a", DataDir: "/tmp/x", RaftBind: "127.0.0.1:0", AdminBind: "127.0.0.1:0", Bootstrap: true}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestCheckStore(t *testing.T) {
	for _, tc := range []struct {
		local bool
		size  int
		bad   bool
	}{{true, 1, false}, {true, 3, true}, {false, 3, false}, {false, 1, false}} {
		err := cluster.CheckStore(tc.local, tc.size)
		if (err != nil) != tc.bad || (tc.bad && !errors.Is(err, cluster.ErrLocalStore)) {
			t.Errorf("CheckStore(%v, %d) = %v", tc.local, tc.size, err)
		}
	}
}

func TestDevCertFiles(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := cluster.WriteDevCA(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.WriteDevCA(dir, now); !errors.Is(err, cluster.ErrCerts) {
		t.Errorf("overwriting the CA: %v", err)
	}
	loaded, err := cluster.LoadDevCA(dir)
	if err != nil || !loaded.Cert.Equal(ca.Cert) {
		t.Fatalf("LoadDevCA: %v", err)
	}
	files, err := loaded.WriteNode(dir, "node-1", []string{"10.1.2.3", "node-1.internal"}, now)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := cluster.LoadTLS(files)
	if err != nil {
		t.Fatal(err)
	}
	leaf := conf.Certificates[0].Leaf
	if leaf == nil || leaf.Subject.CommonName != "node-1" || !strings.Contains(strings.Join(leaf.DNSNames, ","), "node-1.internal") {
		t.Errorf("leaf: %+v", leaf)
	}
	if _, err := ca.WriteNode(dir, "../evil", nil, now); !errors.Is(err, cluster.ErrCerts) {
		t.Errorf("path in node ID: %v", err)
	}
	if _, err := cluster.LoadTLS(cluster.CertFiles{CA: files.CA, Cert: files.Key, Key: files.Key}); !errors.Is(err, cluster.ErrCerts) {
		t.Errorf("bad files: %v", err)
	}
}
