package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"testing"

	"github.com/phasm-go/phasm/shard"
)

func TestCheckIdentityBindsRequestsToCertificates(t *testing.T) {
	n := &Node{cfg: Config{NodeID: "a"}, fsm: &fsm{}}
	req := func(cn string, forwarded bool) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "https://x"+pathHeartbeat, nil)
		if cn != "" {
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: cn}}}}
		}
		if forwarded {
			r.Header.Set(headerForwarded, "1")
		}
		return r
	}
	if err := n.checkIdentity(req("", false), "b"); err != nil {
		t.Errorf("without TLS: %v", err)
	}
	if err := n.checkIdentity(req("b", false), "b"); err != nil {
		t.Errorf("b speaking for itself: %v", err)
	}
	if err := n.checkIdentity(req("c", false), "b"); !errors.Is(err, ErrIdentity) {
		t.Errorf("c speaking for b: %v, want ErrIdentity", err)
	}
	if err := n.checkIdentity(req("c", true), "b"); !errors.Is(err, ErrIdentity) {
		t.Errorf("c, not a member, forwarding for b: %v, want ErrIdentity", err)
	}
	st := n.fsm.state()
	st.Members = append(st.Members, Member{ID: shard.NodeID("c"), Status: shard.Alive})
	n.fsm.st = st
	if err := n.checkIdentity(req("c", true), "b"); err != nil {
		t.Errorf("member c forwarding for b: %v", err)
	}
}
