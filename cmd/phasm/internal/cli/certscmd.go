package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/shard"
)

// certsCmd is `phasm certs`: the development CA helper (cluster.DevCA) on
// the command line, so a cluster can run over mutual TLS without other
// tools.
func (a *App) certsCmd() *cobra.Command {
	var dir string
	var nodes, hosts []string
	cmd := &cobra.Command{
		Use:   "certs --dir DIR --node ID,...",
		Short: "Create a development CA and node certificates for mutual TLS",
		Long: `Create a development certificate authority in --dir (ca.pem, ca-key.pem;
kept when it is already there) and a certificate and key for each --node
(ID.pem, ID-key.pem), valid for a year, for both sides of mutual TLS
between nodes. A node is then started with

  --tls-ca DIR/ca.pem --tls-cert DIR/ID.pem --tls-key DIR/ID-key.pem

Node certificates name localhost, 127.0.0.1 and ::1, plus every --host (a
DNS name or an IP address other nodes dial this node at). Existing files
are never overwritten: a node whose files exist is an error.

This is for development and tests; a production cluster should use its own
PKI (the node only needs the three PEM files).`,
		Example: `  phasm certs --dir ./certs --node n1,n2,n3
  phasm certs --dir ./certs --node n4 --host node4.internal,10.0.0.4`,
		Args: cobra.NoArgs,
		RunE: a.run(func(*cobra.Command, []string) error {
			var errs []error
			if dir == "" {
				errs = append(errs, errors.New("--dir is required"))
			}
			if len(nodes) == 0 {
				errs = append(errs, errors.New("--node is required: the IDs to issue certificates for"))
			}
			for _, n := range nodes {
				if n == "" || filepath.Base(n) != n || n == "." || n == ".." {
					errs = append(errs, fmt.Errorf("--node %q: not usable as a file name", n))
				}
			}
			if err := a.validate(errs...); err != nil {
				return err
			}
			now := time.Now()
			var ca *cluster.DevCA
			var err error
			if _, serr := os.Stat(filepath.Join(dir, cluster.CAFile)); serr == nil {
				ca, err = cluster.LoadDevCA(dir)
				if err == nil {
					fmt.Fprintf(a.io.Out, "using the CA in %s\n", filepath.Join(dir, cluster.CAFile))
				}
			} else {
				ca, err = cluster.WriteDevCA(dir, now)
				if err == nil {
					fmt.Fprintf(a.io.Out, "created the CA %s (its key: %s)\n", filepath.Join(dir, cluster.CAFile), filepath.Join(dir, cluster.CAKeyFile))
				}
			}
			if err != nil {
				return err
			}
			for _, n := range nodes {
				f, err := ca.WriteNode(dir, shard.NodeID(n), hosts, now)
				if err != nil {
					return fmt.Errorf("node %s: %w", n, err)
				}
				fmt.Fprintf(a.io.Out, "node %s: --tls-ca %s --tls-cert %s --tls-key %s\n", n, f.CA, f.Cert, f.Key)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory of the CA and node files (created if missing)")
	f.StringSliceVar(&nodes, "node", nil, "node IDs to issue certificates for, comma-separated")
	f.StringSliceVar(&hosts, "host", nil, "extra DNS names or IP addresses for the node certificates")
	return cmd
}
