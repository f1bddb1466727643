package kinds

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/phasm-go/phasm/examples/bank/account"
	"github.com/phasm-go/phasm/examples/counter/counter"
	"github.com/phasm-go/phasm/examples/dentist/clinic"
	"github.com/phasm-go/phasm/machine"
)

// ErrBadInput wraps every problem with a JSON input: malformed JSON, an
// unknown field, an unknown input kind or value.
var ErrBadInput = errors.New("kinds: bad input")

func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadInput, fmt.Sprintf(format, args...))
}

// strictDecode decodes one JSON value into v, refusing unknown fields and
// trailing data.
func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badInput("%v", err)
	}
	if dec.More() {
		return badInput("trailing data after the JSON value")
	}
	return nil
}

// AccountInput is the JSON form of account.Input.
type AccountInput struct {
	// Kind is deposit, withdraw, transfer or close (credit appears only in
	// journals: the runtime delivers it).
	Kind        string `json:"kind"`
	AmountCents int64  `json:"amount_cents,omitempty"`
	To          string `json:"to,omitempty"`
	From        string `json:"from,omitempty"`
	TransferID  uint64 `json:"transfer_id,omitempty"`
	Ref         uint64 `json:"ref,omitempty"`
}

func parseAccount(data []byte) (account.Input, error) {
	var j AccountInput
	if err := strictDecode(data, &j); err != nil {
		return account.Input{}, err
	}
	in := account.Input{AmountCents: j.AmountCents, To: j.To, Ref: j.Ref}
	switch j.Kind {
	case "deposit":
		in.Kind = account.Deposit
	case "withdraw":
		in.Kind = account.Withdraw
	case "transfer":
		in.Kind = account.Transfer
	case "close":
		in.Kind = account.Close
	case "credit":
		return account.Input{}, badInput("account: credits are delivered by the runtime, never sent from outside")
	case "":
		return account.Input{}, badInput(`account: "kind" is required (deposit, withdraw, transfer, close)`)
	default:
		return account.Input{}, badInput("account: unknown kind %q (want deposit, withdraw, transfer, close)", j.Kind)
	}
	if j.From != "" || j.TransferID != 0 {
		return account.Input{}, badInput(`account: "from" and "transfer_id" belong to credits only`)
	}
	return in, nil
}

func showAccount(in account.Input) any {
	return AccountInput{Kind: in.Kind.String(), AmountCents: in.AmountCents, To: in.To, From: in.From, TransferID: uint64(in.TransferID), Ref: in.Ref}
}

func showAccountResult(r account.Result) any {
	return struct {
		Credited bool   `json:"credited"`
		Code     string `json:"code,omitempty"`
	}{r.Credited, r.Code}
}

// ClinicInput is the JSON form of clinic.Input.
type ClinicInput struct {
	// Kind is exact, earliest or cancel.
	Kind string `json:"kind"`
	Ref  uint64 `json:"ref"`
	// Type is cleaning, checkup, filling or root_canal.
	Type string `json:"type,omitempty"`
	// Day is Mon..Sun (exact).
	Day string `json:"day,omitempty"`
	// Start is "HH:MM" (exact).
	Start  string        `json:"start,omitempty"`
	Prefer *ClinicPrefer `json:"prefer,omitempty"`
}

// ClinicPrefer is the JSON form of clinic.Preferences.
type ClinicPrefer struct {
	Days   []string      `json:"days,omitempty"`
	Ranges []ClinicRange `json:"ranges,omitempty"`
}

// ClinicRange is a preferred time range, "HH:MM" to "HH:MM".
type ClinicRange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

var typeNames = map[string]clinic.AppointmentType{
	"cleaning": clinic.Cleaning, "checkup": clinic.Checkup, "filling": clinic.Filling, "root_canal": clinic.RootCanal,
}

func typeName(t clinic.AppointmentType) string {
	for n, v := range typeNames {
		if v == t {
			return n
		}
	}
	return t.String()
}

func parseDay(s string) (clinic.Weekday, error) {
	for d := clinic.Monday; d <= clinic.Sunday; d++ {
		if strings.EqualFold(d.String(), s) {
			return d, nil
		}
	}
	return 0, badInput("clinic: unknown day %q (want Mon..Sun)", s)
}

func parseClock(s string) (clinic.Clock, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 {
		return 0, badInput("clinic: bad time %q (want HH:MM)", s)
	}
	return clinic.At(hh, mm), nil
}

func parseClinic(data []byte) (clinic.Input, error) {
	var j ClinicInput
	if err := strictDecode(data, &j); err != nil {
		return clinic.Input{}, err
	}
	in := clinic.Input{Ref: j.Ref}
	switch j.Kind {
	case "exact":
		in.Kind = clinic.RequestExact
	case "earliest":
		in.Kind = clinic.RequestEarliest
	case "cancel":
		in.Kind = clinic.Cancel
		return in, nil
	case "":
		return clinic.Input{}, badInput(`clinic: "kind" is required (exact, earliest, cancel)`)
	default:
		return clinic.Input{}, badInput("clinic: unknown kind %q (want exact, earliest, cancel)", j.Kind)
	}
	t, ok := typeNames[j.Type]
	if !ok {
		return clinic.Input{}, badInput("clinic: unknown type %q (want cleaning, checkup, filling, root_canal)", j.Type)
	}
	in.Type = t
	var err error
	if in.Kind == clinic.RequestExact {
		if in.Day, err = parseDay(j.Day); err != nil {
			return clinic.Input{}, err
		}
		if in.Start, err = parseClock(j.Start); err != nil {
			return clinic.Input{}, err
		}
		return in, nil
	}
	if p := j.Prefer; p != nil {
		if len(p.Days) > len(in.Prefer.Days) || len(p.Ranges) > len(in.Prefer.Ranges) {
			return clinic.Input{}, badInput("clinic: at most %d days and %d ranges", len(in.Prefer.Days), len(in.Prefer.Ranges))
		}
		for i, d := range p.Days {
			if in.Prefer.Days[i], err = parseDay(d); err != nil {
				return clinic.Input{}, err
			}
		}
		for i, r := range p.Ranges {
			if in.Prefer.Ranges[i].From, err = parseClock(r.From); err != nil {
				return clinic.Input{}, err
			}
			if in.Prefer.Ranges[i].To, err = parseClock(r.To); err != nil {
				return clinic.Input{}, err
			}
		}
	}
	return in, nil
}

func showClinic(in clinic.Input) any {
	j := ClinicInput{Ref: in.Ref}
	switch in.Kind {
	case clinic.RequestExact:
		j.Kind, j.Type, j.Day, j.Start = "exact", typeName(in.Type), in.Day.String(), in.Start.String()
	case clinic.RequestEarliest:
		j.Kind, j.Type = "earliest", typeName(in.Type)
		p := &ClinicPrefer{}
		for _, d := range in.Prefer.Days {
			if d == 0 {
				break
			}
			p.Days = append(p.Days, d.String())
		}
		for _, r := range in.Prefer.Ranges {
			if r == (clinic.TimeRange{}) {
				break
			}
			p.Ranges = append(p.Ranges, ClinicRange{From: r.From.String(), To: r.To.String()})
		}
		if len(p.Days)+len(p.Ranges) > 0 {
			j.Prefer = p
		}
	case clinic.Cancel:
		j.Kind = "cancel"
	default:
		j.Kind = in.Kind.String()
	}
	return j
}

func showClinicResult(r clinic.Result) any {
	reason := ""
	switch r.Reason {
	case clinic.Declined:
		reason = "declined"
	case clinic.Unavailable:
		reason = "unavailable"
	}
	return struct {
		OK     bool   `json:"ok"`
		Reason string `json:"reason,omitempty"`
	}{r.OK, reason}
}

// CounterInput is the JSON form of counter.Input.
type CounterInput struct {
	Add uint64 `json:"add"`
}

func parseCounter(data []byte) (counter.Input, error) {
	var j CounterInput
	if err := strictDecode(data, &j); err != nil {
		return counter.Input{}, err
	}
	return counter.Input{Add: j.Add}, nil
}

func showCounter(in counter.Input) any { return CounterInput{Add: in.Add} }

func showNone(machine.None) any { return nil }
