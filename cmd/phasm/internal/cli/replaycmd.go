package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/phasm-go/phasm/cmd/phasm/internal/kinds"
	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
	"github.com/phasm-go/phasm/persistence/pgstore"
)

func (a *App) replayCmd() *cobra.Command {
	var dataDir, dsn, schema string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "replay KIND ID",
		Short: "Replay an entity's journal through its machine, step by step",
		Long: `Load entity ID of KIND (account, clinic or counter) from a Pebble data
directory (--data, not in use by a running node) or PostgreSQL (--postgres)
and replay its snapshot and journal through the machine, printing every step:
sequence number, acceptance time, record kind, input (or result), outcome and
the digest of the state after it. Replay verifies every recorded digest and
outcome: nondeterminism or corruption is reported with the entity and the
sequence number and exits with status 3. At the end Restore runs and the
outstanding tracked actions are counted.`,
		Example: `  phasm replay account acct-000001 --data ./phasm-data
  phasm replay clinic clinic-0007 --postgres 'postgres://phasm@localhost/phasm' --json`,
		Args: cobra.ExactArgs(2),
		RunE: a.run(func(cmd *cobra.Command, args []string) error {
			kind, id := args[0], args[1]
			var problems []error
			if !known(kind) {
				problems = append(problems, fmt.Errorf("unknown kind %q (want one of %s)", kind, strings.Join(kinds.Names(), ", ")))
			}
			switch {
			case dataDir == "" && dsn == "":
				problems = append(problems, errors.New("a store is required: --data DIR (Pebble) or --postgres DSN"))
			case dataDir != "" && dsn != "":
				problems = append(problems, errors.New("--data and --postgres are exclusive"))
			case dataDir != "":
				if fi, err := os.Stat(dataDir); err != nil || !fi.IsDir() {
					problems = append(problems, fmt.Errorf("--data %s: no such directory", dataDir))
				} else if !isPebbleDir(dataDir) {
					problems = append(problems, fmt.Errorf("--data %s: not a phasm data directory (no Pebble database)", dataDir))
				}
			}
			if err := a.validate(problems...); err != nil {
				return err
			}
			cat, err := kinds.Catalog()
			if err != nil {
				return err
			}
			store, _, err := openStore(cmd.Context(), dataDir, dsn, pgstore.Options{Schema: schema})
			if err != nil {
				return err
			}
			defer store.Close()
			e := machine.Entity{Kind: kind, ID: id}
			l, err := store.Load(cmd.Context(), e)
			if err != nil {
				if errors.Is(err, persistence.ErrCorrupt) {
					return fmt.Errorf("%w: %v", ErrCheckFailed, err)
				}
				return err
			}
			if l.LastSeq == 0 {
				return fmt.Errorf("entity %s has no journal in this store", e)
			}
			return a.printReplay(cat[kind], e, l, asJSON)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data", "", "Pebble data directory")
	f.StringVar(&dsn, "postgres", "", "PostgreSQL DSN")
	f.StringVar(&schema, "postgres-schema", "", "PostgreSQL schema of phasm's tables (default: pgstore's)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *App) printReplay(d kinds.Descriptor, e machine.Entity, l persistence.Loaded, asJSON bool) error {
	var steps []kinds.Step
	tw := tabwriter.NewWriter(a.io.Out, 0, 0, 2, ' ', 0)
	if !asJSON {
		snap := "no snapshot"
		if l.Snapshot != nil {
			snap = fmt.Sprintf("snapshot at seq %d", l.Snapshot.Seq)
		}
		fmt.Fprintf(a.io.Out, "%s: %s, %d journal records after it, last seq %d\n", e, snap, len(l.Records), l.LastSeq)
		fmt.Fprintln(tw, "SEQ\tTIME\tKIND\tINPUT\tOUTCOME\tSTATE DIGEST")
	}
	sum, err := d.Replay(e.ID, l, func(s kinds.Step) {
		if asJSON {
			steps = append(steps, s)
			return
		}
		what := s.Input
		if s.Result != nil {
			what = s.Result
		}
		b, _ := json.Marshal(what)
		if what == nil {
			b = []byte("-")
		}
		if s.Kind == "completion" {
			b = []byte(fmt.Sprintf("action %d: %s", s.ActionID, b))
		}
		outcome := s.Outcome
		if s.Error != nil {
			outcome += " (" + s.Error.Code + ")"
		}
		ts := "-"
		if !s.Time.IsZero() {
			ts = s.Time.UTC().Format("2006-01-02T15:04:05.000000Z")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", s.Seq, ts, s.Kind, b, outcome, s.StateDigest)
	})
	tw.Flush()
	var nd *machine.NondeterminismError
	var ce *machine.CorruptError
	if asJSON {
		out := map[string]any{"entity": e.String(), "steps": steps}
		if err != nil {
			out["error"] = err.Error()
		} else {
			out["summary"] = sum
		}
		enc := json.NewEncoder(a.io.Out)
		enc.SetIndent("", "  ")
		if werr := enc.Encode(out); werr != nil {
			return werr
		}
	}
	switch {
	case errors.As(err, &nd):
		return fmt.Errorf("%w: nondeterminism in %s at seq %d: %s differs: recorded %s, replayed %s", ErrCheckFailed, nd.Entity, nd.Seq, nd.What, nd.Recorded, nd.Replayed)
	case errors.As(err, &ce):
		return fmt.Errorf("%w: %v", ErrCheckFailed, ce)
	case err != nil:
		return err
	}
	if !asJSON {
		restore := "Restore re-emitted exactly the outstanding actions"
		if !sum.RestoreComplete {
			restore = "Restore did NOT re-emit exactly the outstanding actions (a machine bug)"
		}
		fmt.Fprintf(a.io.Out, "replayed %d records: every outcome and digest as recorded; final state digest %s; %d tracked actions outstanding; %s\n",
			sum.Records, sum.StateDigest, sum.Outstanding, restore)
	}
	if !sum.RestoreComplete {
		return fmt.Errorf("%w: %s: Restore disagrees with the journal's outstanding actions", ErrCheckFailed, e)
	}
	return nil
}
