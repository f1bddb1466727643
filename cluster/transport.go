package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// maxHandshakes bounds the TLS handshakes a listener runs at once; past it
// new connections are closed at once (a handshake flood cannot pile up
// goroutines).
const maxHandshakes = 64

// handshakeTimeout bounds one server-side TLS handshake.
const handshakeTimeout = 5 * time.Second

// serverTLS returns the server side of the mutual TLS configuration: client
// certificates are required and verified against the cluster CA.
func serverTLS(c *tls.Config) *tls.Config {
	if c == nil {
		return nil
	}
	s := c.Clone()
	s.ClientAuth = tls.RequireAndVerifyClientCert
	if s.MinVersion < tls.VersionTLS12 {
		s.MinVersion = tls.VersionTLS12
	}
	return s
}

// clientTLS returns the client side: this node's certificate is presented,
// and the server's chain is verified against RootCAs. With an empty
// ServerName the host name is not checked: any certificate the cluster CA
// issued for server use is accepted.
func clientTLS(c *tls.Config) *tls.Config {
	if c == nil {
		return nil
	}
	cl := c.Clone()
	if cl.MinVersion < tls.VersionTLS12 {
		cl.MinVersion = tls.VersionTLS12
	}
	if cl.ServerName == "" {
		roots := cl.RootCAs
		cl.InsecureSkipVerify = true // replaced by VerifyConnection below
		cl.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server presented no certificate")
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			return err
		}
	}
	return cl
}

// advertiseAddr is a net.Addr for an advertised host:port.
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }

// streamLayer is a raft.StreamLayer over TCP, optionally with mutual TLS.
// With TLS, accepted connections are handshaken in their own goroutines
// (at most maxHandshakes at once, each within handshakeTimeout) before
// Raft sees them, so a peer without a certificate from the cluster CA is
// refused and logged, and a slow one cannot stall the accept loop.
type streamLayer struct {
	ln        net.Listener
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
	log       *slog.Logger

	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	sem    chan struct{}
	wg     sync.WaitGroup
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(ln net.Listener, advertise net.Addr, tlsConf *tls.Config, log *slog.Logger) *streamLayer {
	s := &streamLayer{
		ln: ln, advertise: advertise, server: serverTLS(tlsConf), client: clientTLS(tlsConf), log: log,
		conns: make(chan net.Conn), closed: make(chan struct{}), sem: make(chan struct{}, maxHandshakes),
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s
}

func (s *streamLayer) acceptLoop() {
	defer s.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("cluster: raft accept failed", "err", err)
			select {
			case <-s.closed:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if s.server == nil {
			s.deliver(c)
			continue
		}
		select {
		case s.sem <- struct{}{}:
		default:
			s.log.Warn("cluster: too many raft TLS handshakes, refusing connection", "remote", c.RemoteAddr())
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			tc := tls.Server(c, s.server)
			ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
			err := tc.HandshakeContext(ctx)
			cancel()
			if err != nil {
				s.log.Warn("cluster: rejected raft connection: TLS handshake failed", "remote", c.RemoteAddr(), "err", err)
				c.Close()
				return
			}
			s.deliver(tc)
		}()
	}
}

func (s *streamLayer) deliver(c net.Conn) {
	select {
	case s.conns <- c:
	case <-s.closed:
		c.Close()
	}
}

// Accept waits for the next (handshaken) connection.
func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and closes the listener.
func (s *streamLayer) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closed)
		err = s.ln.Close()
	})
	return err
}

// wait waits for the accept loop and handshakes to end (after Close).
func (s *streamLayer) wait() { s.wg.Wait() }

// Addr returns the advertised address.
func (s *streamLayer) Addr() net.Addr { return s.advertise }

// Dial connects to a Raft peer, with the TLS handshake when configured.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if s.client == nil {
		return d.Dial("tcp", string(address))
	}
	td := &tls.Dialer{NetDialer: d, Config: s.client}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := td.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrRPC, address, err)
	}
	return c, nil
}
