package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/phasm-go/phasm/cluster"
	"github.com/phasm-go/phasm/cmd/phasm/internal/admin"
	"github.com/phasm-go/phasm/cmd/phasm/internal/kinds"
	"github.com/phasm-go/phasm/cmd/phasm/internal/remote"
)

// clientFlags are the flags of the commands that call a node's admin API.
type clientFlags struct {
	Admin   string
	Token   string
	Timeout time.Duration
}

func (c *clientFlags) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.Admin, "admin", DefaultAdminAddr, "the node's admin API address (host:port or URL)")
	f.StringVar(&c.Token, "admin-token", "", "bearer token of the admin API (env PHASM_ADMIN_TOKEN)")
	f.DurationVar(&c.Timeout, "timeout", 15*time.Second, "timeout of the call")
}

func (c *clientFlags) validate() error {
	var errs []error
	if !strings.Contains(c.Admin, "://") {
		if err := remote.CheckAddress(c.Admin); err != nil {
			errs = append(errs, fmt.Errorf("--admin: %v", err))
		}
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout must be positive"))
	}
	return errors.Join(errs...)
}

func (c *clientFlags) client() *admin.Client {
	return &admin.Client{Addr: c.Admin, Token: c.Token, HTTP: &http.Client{Timeout: c.Timeout}}
}

func (a *App) statusCmd() *cobra.Command {
	var cf clientFlags
	var asJSON bool
	var targets, adminTargets []string
	var tlsFiles [3]string // cert, key, CA
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a node's status, or a cluster's",
		Long: `Show a node's status through its admin API: node ID, kinds, shards, store,
uptime and the host's counters, as a table or as JSON (--json). With
--target host:port,... (members' cluster RPC addresses, as given to
--cluster-rpc) it shows the cluster as the first member that answers sees
it: leader, Raft term and indexes, map epoch, and every member with its
status, addresses and owned shards; with --admin-target (the members'
admin API addresses) also the entities active on each. A cluster on
mutual TLS needs --tls-cert, --tls-key and --tls-ca.`,
		Example: `  phasm status
  phasm status --admin 10.0.0.5:7480 --admin-token s3cret --json
  phasm status --target 10.0.0.1:7401,10.0.0.2:7401`,
		Args: cobra.NoArgs,
		RunE: a.run(func(cmd *cobra.Command, _ []string) error {
			var tErrs []error
			for _, t := range targets {
				if err := remote.CheckAddress(t); err != nil {
					tErrs = append(tErrs, fmt.Errorf("--target: %v", err))
				}
			}
			for _, t := range adminTargets {
				if err := remote.CheckAddress(t); err != nil {
					tErrs = append(tErrs, fmt.Errorf("--admin-target: %v", err))
				}
			}
			if len(adminTargets) > 0 && len(targets) == 0 {
				tErrs = append(tErrs, errors.New("--admin-target needs --target"))
			}
			nTLS := 0
			for _, f := range tlsFiles {
				if f != "" {
					nTLS++
				}
			}
			if nTLS != 0 && nTLS != 3 {
				tErrs = append(tErrs, errors.New("--tls-cert, --tls-key and --tls-ca go together: give all three or none"))
			}
			if err := a.validate(append(tErrs, cf.validate())...); err != nil {
				return err
			}
			if len(targets) > 0 {
				var tc *tls.Config
				if nTLS == 3 {
					var err error
					if tc, err = cluster.LoadTLS(cluster.CertFiles{Cert: tlsFiles[0], Key: tlsFiles[1], CA: tlsFiles[2]}); err != nil {
						return err
					}
				}
				st, err := fetchClusterStatus(cmd.Context(), targets, tc, cf.Timeout)
				if err != nil {
					return err
				}
				active := a.activeByNode(cmd.Context(), cf, adminTargets)
				if asJSON {
					enc := json.NewEncoder(a.io.Out)
					enc.SetIndent("", "  ")
					return enc.Encode(struct {
						cluster.Status
						ActiveEntities map[string]int64 `json:"active_entities,omitempty"`
					}{st, active})
				}
				printClusterStatus(a.io.Out, st, active)
				return nil
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), cf.Timeout)
			defer cancel()
			st, err := cf.client().Status(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.io.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(a.io.Out, st)
			return nil
		}),
	}
	cf.bind(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	cmd.Flags().StringSliceVar(&targets, "target", nil, "cluster members' cluster RPC addresses host:port,...: show the cluster")
	cmd.Flags().StringSliceVar(&adminTargets, "admin-target", nil, "the members' admin API addresses host:port,...: add the entities active on each")
	cmd.Flags().StringVar(&tlsFiles[0], "tls-cert", "", "client certificate (PEM) for a cluster on mutual TLS")
	cmd.Flags().StringVar(&tlsFiles[1], "tls-key", "", "client private key (PEM)")
	cmd.Flags().StringVar(&tlsFiles[2], "tls-ca", "", "cluster CA certificate (PEM)")
	return cmd
}

// fetchClusterStatus asks the targets in order and returns the first
// answer, or every target's error.
func fetchClusterStatus(ctx context.Context, targets []string, tc *tls.Config, timeout time.Duration) (cluster.Status, error) {
	var errs []error
	for _, t := range targets {
		st, err := cluster.FetchStatus(ctx, t, tc, timeout)
		if err == nil {
			return st, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", t, err))
	}
	return cluster.Status{}, fmt.Errorf("cluster status: no target answered: %w", errors.Join(errs...))
}

// activeByNode asks each admin address for its node's status and returns
// the entities active per node ID; nodes that do not answer are left out.
func (a *App) activeByNode(ctx context.Context, cf clientFlags, admins []string) map[string]int64 {
	if len(admins) == 0 {
		return nil
	}
	out := map[string]int64{}
	for _, addr := range admins {
		c := cf
		c.Admin = addr
		actx, cancel := context.WithTimeout(ctx, cf.Timeout)
		st, err := c.client().Status(actx)
		cancel()
		if err == nil {
			out[st.NodeID] = st.Stats.Active
		}
	}
	return out
}

func printClusterStatus(w io.Writer, st cluster.Status, active map[string]int64) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "asked\t%s (%s)\n", st.Node, st.RaftState)
	fmt.Fprintf(tw, "leader\t%s\n", st.Leader)
	fmt.Fprintf(tw, "term\t%d\n", st.Term)
	fmt.Fprintf(tw, "raft log\tlast %d, commit %d, applied %d\n", st.LastIndex, st.CommitIndex, st.AppliedIndex)
	fmt.Fprintf(tw, "state version\t%d\n", st.Version)
	fmt.Fprintf(tw, "map epoch\t%d\n", st.MapEpoch)
	fmt.Fprintf(tw, "shards\t%d\n", st.Shards)
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "MEMBER\tSTATUS\tSUFFRAGE\tSHARDS\tACTIVE\tRAFT\tCLUSTER RPC\tREMOTE")
	for _, m := range st.Members {
		act := "-"
		if n, ok := active[string(m.ID)]; ok {
			act = fmt.Sprint(n)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", m.ID, m.StatusName, m.Suffrage, m.OwnedShards, act, m.Addrs.Raft, m.Addrs.Admin, m.Addrs.Remote)
	}
	tw.Flush()
}

func printStatus(w io.Writer, st admin.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	s := st.Stats
	rows := [][2]string{
		{"node", st.NodeID}, {"ready", fmt.Sprint(st.Ready)}, {"store", st.Store}, {"shards", fmt.Sprint(st.Shards)},
		{"kinds", strings.Join(st.Kinds, ", ")}, {"uptime", (time.Duration(st.UptimeS * float64(time.Second))).Round(time.Second).String()},
		{"accepted", fmt.Sprint(s.Accepted)}, {"rejected", fmt.Sprint(s.Rejected)}, {"duplicates", fmt.Sprint(s.Duplicates)},
		{"failed steps", fmt.Sprint(s.Failed)}, {"pending requests", fmt.Sprint(s.Pending)}, {"actions queued", fmt.Sprint(s.ActionsQueued)},
		{"actions started", fmt.Sprint(s.ActionsStarted)}, {"action retries", fmt.Sprint(s.ActionRetries)}, {"action failures", fmt.Sprint(s.ActionFailures)},
		{"active entities", fmt.Sprint(s.Active)},
		{"activations", fmt.Sprint(s.Activations)}, {"passivations", fmt.Sprint(s.Passivations)}, {"load failures", fmt.Sprint(s.LoadFailures)},
		{"appends", fmt.Sprint(s.Appends)}, {"append failures", fmt.Sprint(s.AppendFailures)}, {"overloaded", fmt.Sprint(s.Overloaded)},
		{"cluster", clusterLine(st.Cluster)},
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
	}
	tw.Flush()
}

func (a *App) sendCmd() *cobra.Command {
	var cf clientFlags
	var requestID string
	cmd := &cobra.Command{
		Use:   "send KIND ID JSON",
		Short: "Send an input to an entity through a node's admin API",
		Long: `Send an input, given as JSON (or '-' to read it from standard input), to
entity ID of KIND (account, clinic or counter) and print the reply:
{"accepted":true} or {"accepted":false,"error":{"code":...,"message":...}}.
A rejection is the machine's answer, not a failure: the exit status is 0.
With --request-id a retry gets the original reply instead of a second
transition.

Inputs:
  account  {"kind":"deposit","amount_cents":1000}   withdraw, close likewise
           {"kind":"transfer","amount_cents":250,"to":"bob","ref":1}
  clinic   {"kind":"exact","ref":1,"type":"checkup","day":"Mon","start":"09:30"}
           {"kind":"earliest","ref":2,"type":"filling","prefer":{"days":["Wed"],"ranges":[{"from":"14:00","to":"18:00"}]}}
           {"kind":"cancel","ref":1}
  counter  {"add":5}`,
		Example: `  phasm send account alice '{"kind":"deposit","amount_cents":1000}'
  echo '{"add":1}' | phasm send counter visits - --request-id r-1`,
		Args: cobra.ExactArgs(3),
		RunE: a.run(func(cmd *cobra.Command, args []string) error {
			kind, id, input := args[0], args[1], []byte(args[2])
			var problems []error
			if args[2] == "-" {
				b, err := io.ReadAll(io.LimitReader(a.io.In, 1<<20))
				if err != nil {
					return err
				}
				input = b
			}
			if !known(kind) {
				problems = append(problems, fmt.Errorf("unknown kind %q (want one of %s)", kind, strings.Join(kinds.Names(), ", ")))
			}
			if id == "" {
				problems = append(problems, fmt.Errorf("the entity ID is empty"))
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(input, &obj); err != nil || obj == nil {
				if err == nil {
					err = errors.New("null")
				}
				problems = append(problems, fmt.Errorf("the input is not a JSON object: %v", err))
			}
			if err := a.validate(append(problems, cf.validate())...); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), cf.Timeout)
			defer cancel()
			reply, err := cf.client().Send(ctx, kind, id, input, requestID)
			var apiErr *admin.APIError
			if errors.As(err, &apiErr) && (apiErr.StatusCode == http.StatusBadRequest || apiErr.StatusCode == http.StatusNotFound) {
				return usage(err)
			}
			if err != nil {
				return err
			}
			b, _ := json.Marshal(reply)
			fmt.Fprintln(a.io.Out, string(b))
			return nil
		}),
	}
	cf.bind(cmd)
	cmd.Flags().StringVar(&requestID, "request-id", "", "request ID (idempotency key) of the input")
	return cmd
}

func known(kind string) bool {
	for _, k := range kinds.Names() {
		if k == kind {
			return true
		}
	}
	return false
}

// isPebbleDir reports whether dir holds a Pebble database.
func isPebbleDir(dir string) bool {
	_, err := os.Stat(dir + "/CURRENT")
	return err == nil
}

// clusterLine summarises /v1/status's "cluster" field.
func clusterLine(c any) string {
	m, ok := c.(map[string]any)
	if !ok {
		return "none (single node)"
	}
	members, _ := m["members"].([]any)
	return fmt.Sprintf("member; leader %v, %d members, map epoch %v (phasm status --target for details)", m["leader"], len(members), m["map_epoch"])
}
