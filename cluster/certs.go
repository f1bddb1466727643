package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/phasm-go/phasm/shard"
)

// DevCertValidity is how long WriteDevCA and IssueNode certificates are
// valid.
const DevCertValidity = 365 * 24 * time.Hour

// File names in a certificate directory. A node's files are named after
// its ID: <id>.pem and <id>-key.pem.
const (
	CAFile    = "ca.pem"
	CAKeyFile = "ca-key.pem"
)

// DevCA is a certificate authority for development and tests: an ECDSA
// P-256 key and a self-signed certificate. It issues node certificates
// valid for both server and client authentication, which is what mutual
// TLS between peers needs. Production clusters should use their own PKI;
// the node only needs the PEM files LoadTLS reads.
type DevCA struct {
	// Cert is the CA certificate; CertPEM its PEM encoding.
	Cert    *x509.Certificate
	CertPEM []byte
	key     *ecdsa.PrivateKey
}

// NodeCert is a node's certificate and key in PEM.
type NodeCert struct {
	CertPEM []byte
	KeyPEM  []byte
}

// CertFiles are the PEM files a node loads with LoadTLS.
type CertFiles struct {
	// CA is the cluster CA certificate; Cert and Key the node's own.
	CA, Cert, Key string
}

// NewDevCA creates a CA named name, valid from now for DevCertValidity.
func NewDevCA(name string, now time.Time) (*DevCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCerts, err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"phasm"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(DevCertValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCerts, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCerts, err)
	}
	return &DevCA{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}, nil
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCerts, err)
	}
	return n, nil
}

// IssueNode issues a certificate for node id, with id as its common name,
// and hosts (IP addresses or DNS names) as subject alternative names;
// "localhost" and 127.0.0.1 are always included. It is valid from now for
// DevCertValidity, for server and client authentication.
func (ca *DevCA) IssueNode(id shard.NodeID, hosts []string, now time.Time) (NodeCert, error) {
	if why := checkNodeID(id); why != "" {
		return NodeCert{}, fmt.Errorf("%w: node ID %s", ErrCerts, why)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return NodeCert{}, fmt.Errorf("%w: %w", ErrCerts, err)
	}
	serial, err := serialNumber()
	if err != nil {
		return NodeCert{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: string(id), Organization: []string{"phasm"}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(DevCertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return NodeCert{}, fmt.Errorf("%w: %w", ErrCerts, err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return NodeCert{}, fmt.Errorf("%w: %w", ErrCerts, err)
	}
	return NodeCert{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}),
	}, nil
}

// TLS returns the mutual TLS configuration of a node holding nc, trusting
// ca only: the value for Config.TLS.
func (ca *DevCA) TLS(nc NodeCert) (*tls.Config, error) {
	return buildTLS(ca.CertPEM, nc.CertPEM, nc.KeyPEM)
}

// WriteDevCA creates a CA and writes it to dir (created if missing) as
// CAFile and CAKeyFile (the key readable by the owner only). Existing files
// are not overwritten: that is an error.
func WriteDevCA(dir string, now time.Time) (*DevCA, error) {
	ca, err := NewDevCA("phasm dev CA", now)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCerts, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCerts, err)
	}
	if err := writeNew(filepath.Join(dir, CAFile), ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	if err := writeNew(filepath.Join(dir, CAKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return nil, err
	}
	return ca, nil
}

// LoadDevCA reads the CA WriteDevCA wrote to dir.
func LoadDevCA(dir string) (*DevCA, error) {
	cb, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCerts, err)
	}
	kb, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCerts, err)
	}
	pair, err := tls.X509KeyPair(cb, kb)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCerts, dir, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s: the CA key is not ECDSA", ErrCerts, dir)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || !cert.IsCA {
		return nil, fmt.Errorf("%w: %s: not a CA certificate", ErrCerts, dir)
	}
	return &DevCA{Cert: cert, CertPEM: cb, key: key}, nil
}

// WriteNode issues a certificate for node id (see IssueNode) and writes it
// to dir as <id>.pem and <id>-key.pem, next to a copy of the CA
// certificate if dir has none. The node ID must be usable as a file name
// (no path separators, not "." or ".."). It returns the files to pass to
// LoadTLS.
func (ca *DevCA) WriteNode(dir string, id shard.NodeID, hosts []string, now time.Time) (CertFiles, error) {
	name := string(id)
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name || filepath.Clean(name) != name {
		return CertFiles{}, fmt.Errorf("%w: node ID %q is not usable as a file name", ErrCerts, id)
	}
	nc, err := ca.IssueNode(id, hosts, now)
	if err != nil {
		return CertFiles{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return CertFiles{}, fmt.Errorf("%w: %w", ErrCerts, err)
	}
	f := CertFiles{CA: filepath.Join(dir, CAFile), Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem")}
	if _, err := os.Stat(f.CA); errors.Is(err, os.ErrNotExist) {
		if err := writeNew(f.CA, ca.CertPEM, 0o644); err != nil {
			return CertFiles{}, err
		}
	}
	if err := writeNew(f.Cert, nc.CertPEM, 0o644); err != nil {
		return CertFiles{}, err
	}
	if err := writeNew(f.Key, nc.KeyPEM, 0o600); err != nil {
		return CertFiles{}, err
	}
	return f, nil
}

func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCerts, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCerts, err)
	}
	return nil
}

// LoadTLS reads a node's PEM files and returns its mutual TLS configuration
// (Config.TLS): its certificate, and the CA as the only root for both
// servers and clients.
func LoadTLS(f CertFiles) (*tls.Config, error) {
	ca, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCerts, err)
	}
	cert, err := os.ReadFile(f.Cert)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCerts, err)
	}
	key, err := os.ReadFile(f.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCerts, err)
	}
	return buildTLS(ca, cert, key)
}

func buildTLS(caPEM, certPEM, keyPEM []byte) (*tls.Config, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCerts, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%w: no CA certificate in the CA PEM", ErrCerts)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}
