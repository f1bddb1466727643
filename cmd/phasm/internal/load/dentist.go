package load

import (
	"context"
	"fmt"

	"github.com/phasm-go/phasm/cmd/phasm/internal/kinds"
	"github.com/phasm-go/phasm/examples/dentist/clinic"
)

// ClinicID is the entity ID of clinic i of the dentist workload, after
// Config.IDPrefix.
func ClinicID(i int) string { return fmt.Sprintf("clinic-%04d", i) }

// Ledger quantities of the dentist workload.
const (
	qRequests = iota
	qCancels
)

type ownedBooking struct {
	clinic int
	ref    uint64
}

// maxOwned bounds the accepted requests a worker remembers as candidates
// for a cancellation.
const maxOwned = 256

type dentistLoad struct {
	r    *runner
	summ string
}

func (*dentistLoad) quantities() []string { return []string{"requests", "cancellations"} }

var weekdays = []clinic.Weekday{clinic.Monday, clinic.Tuesday, clinic.Wednesday, clinic.Thursday, clinic.Friday}

var preferredRanges = []clinic.TimeRange{
	{From: clinic.At(9, 0), To: clinic.At(12, 0)},
	{From: clinic.At(13, 0), To: clinic.At(16, 0)},
	{From: clinic.At(14, 0), To: clinic.At(18, 0)},
}

func (d *dentistLoad) op(w *worker) {
	n := d.r.cfg.Entities
	c := w.r.IntN(n)
	x := w.r.Float64()
	if x >= 0.70 && len(w.owned) > 0 {
		i := w.r.IntN(len(w.owned))
		b := w.owned[i]
		w.owned[i] = w.owned[len(w.owned)-1]
		w.owned = w.owned[:len(w.owned)-1]
		o := w.ask(func(ctx context.Context) error {
			return d.r.set.Clinics.Ref(d.r.clinicID(b.clinic)).Ask(ctx, clinic.Input{Kind: clinic.Cancel, Ref: b.ref})
		})
		d.r.led.add(b.clinic, qCancels, 1, o)
		return
	}
	in := clinic.Input{Ref: w.ref(), Type: clinic.AppointmentType(1 + w.r.IntN(4))}
	if x < 0.45 || x >= 0.70 {
		in.Kind = clinic.RequestExact
		in.Day = weekdays[w.r.IntN(len(weekdays))]
		ranges := clinic.Schedule(in.Day)
		tr := ranges[w.r.IntN(len(ranges))]
		starts := (int(tr.To)-int(tr.From)-in.Type.Minutes())/clinic.QuarterMinutes + 1
		in.Start = tr.From + clinic.Clock(clinic.QuarterMinutes*w.r.IntN(starts))
	} else {
		in.Kind = clinic.RequestEarliest
		perm := w.r.Perm(len(weekdays))
		for i := range 1 + w.r.IntN(3) {
			in.Prefer.Days[i] = weekdays[perm[i]]
		}
		if w.r.IntN(2) == 0 {
			in.Prefer.Ranges[0] = preferredRanges[w.r.IntN(len(preferredRanges))]
		}
	}
	o := w.ask(func(ctx context.Context) error { return d.r.set.Clinics.Ref(d.r.clinicID(c)).Ask(ctx, in) })
	d.r.led.add(c, qRequests, 1, o)
	if o == ok {
		if len(w.owned) >= maxOwned {
			w.owned = w.owned[1:]
		}
		w.owned = append(w.owned, ownedBooking{clinic: c, ref: in.Ref})
	}
}

func (d *dentistLoad) summary() string { return d.summ }

func (d *dentistLoad) check(ctx context.Context, thisRun bool) []string {
	r := d.r
	n := r.cfg.Entities
	states, readable, v := readAll(ctx, n, d.r.clinicID, func(ctx context.Context, id string) (clinic.State, error) {
		return r.set.Clinics.Ref(id).Query(ctx)
	})
	var holds map[kinds.Hold]int64
	if thisRun && r.set.Gateway != nil { // a cluster's gateways live in the nodes
		holds = r.set.Gateway.Holds()
	}
	var bookings, requests, paid uint64
	for i := range states {
		if !readable[i] {
			continue
		}
		s := &states[i]
		id := d.r.clinicID(i)
		st := &s.Stats
		bad := func(format string, args ...any) { v = append(v, id+": "+fmt.Sprintf(format, args...)) }
		if err := clinic.CheckState(s); err != nil {
			bad("%v", err)
		}
		if s.Pending != 0 {
			bad("%d requests still awaiting payment or a release after the node became quiet", s.Pending)
		}
		if st.Requests != st.Confirmed+st.NoSlot+st.SlotTaken+uint64(countStatus(s, clinic.AwaitingPayment)) {
			bad("%d requests, but %d confirmed + %d unpaid + %d lost their slot", st.Requests, st.Confirmed, st.NoSlot, st.SlotTaken)
		}
		if st.Released+st.ReleaseFailures != st.SlotTaken+st.Cancelled-uint64(countStatus(s, clinic.SlotTaken)+countStatus(s, clinic.Cancelling)) {
			bad("%d releases (%d failed), but %d slots taken + %d cancellations", st.Released, st.ReleaseFailures, st.SlotTaken, st.Cancelled)
		}
		if uint64(s.Bookings) != st.Confirmed-st.Cancelled {
			bad("%d bookings, but %d confirmed - %d cancelled", s.Bookings, st.Confirmed, st.Cancelled)
		}
		if s.PaidCents != s.PriceCents {
			bad("bookings paid %d cents, priced %d", s.PaidCents, s.PriceCents)
		}
		confirmed := map[uint64]int64{}
		for j := range s.Requests {
			q := &s.Requests[j]
			if q.Status != clinic.Confirmed {
				continue
			}
			if q.PaidCents != q.Type.PriceCents() {
				bad("booking %d (%s) confirmed but paid %d of %d cents", q.Ref, q.Type, q.PaidCents, q.Type.PriceCents())
			}
			if holds != nil && q.Ref>>40 == r.nonce {
				confirmed[q.Ref] = q.PaidCents
				if h, found := holds[kinds.Hold{Clinic: id, Ref: q.Ref}]; !found || h != q.PaidCents {
					bad("booking %d confirmed with %d cents paid, but the payment gateway holds %d for it", q.Ref, q.PaidCents, h)
				}
			}
		}
		for h, amount := range holds {
			if h.Clinic == id && h.Ref>>40 == r.nonce {
				if _, found := confirmed[h.Ref]; !found {
					bad("the payment gateway holds %d cents for booking %d, which is not confirmed: paid but not booked, and not released", amount, h.Ref)
				}
			}
		}
		for _, c := range []struct {
			q    int
			v    uint64
			what string
		}{{qRequests, st.Requests, "requests accepted"}, {qCancels, st.Cancelled, "cancellations"}} {
			if msg := r.led.within(id, i, c.q, int64(c.v), c.what); msg != "" {
				v = append(v, msg)
			}
		}
		bookings += uint64(s.Bookings)
		requests += st.Requests
		paid += uint64(s.PaidCents)
	}
	d.summ = fmt.Sprintf("%d clinics read back; %d requests; %d bookings, no double booking, every booking inside the schedule and paid (%d cents)%s; every clinic within the client's ledger",
		n, requests, bookings, paid, map[bool]string{true: ", matching the payment gateway's holds", false: ""}[holds != nil])
	return v
}

func countStatus(s *clinic.State, st clinic.Status) int {
	n := 0
	for i := range s.Requests {
		if s.Requests[i].Status == st {
			n++
		}
	}
	return n
}
