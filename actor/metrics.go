package actor

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/phasm-go/phasm/machine"
)

// metrics are the host's Prometheus metrics. They are always collected
// (they are cheap); they are exported only when Config.Metrics is set.
type metrics struct {
	inputs          *prometheus.CounterVec   // kind, outcome
	transition      *prometheus.HistogramVec // kind
	persist         *prometheus.HistogramVec // kind
	batch           *prometheus.HistogramVec // kind
	activations     *prometheus.CounterVec   // kind
	activation      *prometheus.HistogramVec // kind
	loadFailures    *prometheus.CounterVec   // kind, reason
	restoreMismatch *prometheus.CounterVec   // kind
	passivations    prometheus.Counter
	active          prometheus.Gauge
	actionsStarted  *prometheus.CounterVec // kind
	actionRetries   *prometheus.CounterVec // kind
	actionFailures  *prometheus.CounterVec // kind
	appendFailures  prometheus.Counter
	overloaded      prometheus.Counter
}

// kindMetrics are one kind's children, looked up once.
type kindMetrics struct {
	accepted, rejected, duplicate, stale, failed prometheus.Counter
	transition, persist, batch, activation       prometheus.Observer
	activations, restoreMismatch                 prometheus.Counter
	nondeterminism, corrupt, loadOther           prometheus.Counter
	actionsStarted, actionRetries, actionFails   prometheus.Counter
}

var latencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

func newMetrics() *metrics {
	const ns = "phasm"
	kind := []string{"kind"}
	return &metrics{
		inputs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "inputs_total",
			Help: "Inputs and completions applied, by kind and outcome (accepted, rejected, duplicate, stale, failed)."}, []string{"kind", "outcome"}),
		transition: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "transition_seconds",
			Help: "Time to step one input through the driver.", Buckets: latencyBuckets}, kind),
		persist: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "persist_seconds",
			Help: "Time from a batch's append to the store until it is durable.", Buckets: latencyBuckets}, kind),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "batch_records",
			Help: "Journal records per entity append.", Buckets: prometheus.ExponentialBuckets(1, 2, 10)}, kind),
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "activations_total",
			Help: "Entities loaded, replayed and restored."}, kind),
		activation: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "activation_seconds",
			Help: "Time to activate an entity (load, replay, Restore).", Buckets: latencyBuckets}, kind),
		loadFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "load_failures_total",
			Help: "Activations that failed, by reason (nondeterminism, corrupt, other)."}, []string{"kind", "reason"}),
		restoreMismatch: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "restore_mismatch_total",
			Help: "Activations whose Restore disagreed with the journal's outstanding actions (a machine bug)."}, kind),
		passivations: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "passivations_total",
			Help: "Entity actors stopped (idle, the active-entity cap, or failure)."}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "active_entities",
			Help: "Entity actors alive."}),
		actionsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "actions_started_total",
			Help: "Tracked actions handed to executors."}, kind),
		actionRetries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "action_retries_total",
			Help: "Executor attempts after the first."}, kind),
		actionFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "action_failures_total",
			Help: "Tracked actions that ended in a terminal failure result."}, kind),
		appendFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "append_failures_total",
			Help: "Store appends that failed (the entity reloaded)."}),
		overloaded: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "overloaded_total",
			Help: "Requests refused with ErrOverloaded."}),
	}
}

func (m *metrics) register(r prometheus.Registerer, h *Host) error {
	for _, c := range []prometheus.Collector{m.inputs, m.transition, m.persist, m.batch, m.activations, m.activation,
		m.loadFailures, m.restoreMismatch, m.passivations, m.active, m.actionsStarted, m.actionRetries,
		m.actionFailures, m.appendFailures, m.overloaded,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "phasm", Name: "actions_in_flight",
			Help: "Tracked actions waiting or executing."}, func() float64 { return float64(h.queued.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "phasm", Name: "requests_pending",
			Help: "Requests admitted and not yet answered."}, func() float64 { return float64(h.pending.Load()) }),
	} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *metrics) forKind(kind string) *kindMetrics {
	return &kindMetrics{
		accepted:        m.inputs.WithLabelValues(kind, "accepted"),
		rejected:        m.inputs.WithLabelValues(kind, "rejected"),
		duplicate:       m.inputs.WithLabelValues(kind, "duplicate"),
		stale:           m.inputs.WithLabelValues(kind, "stale"),
		failed:          m.inputs.WithLabelValues(kind, "failed"),
		transition:      m.transition.WithLabelValues(kind),
		persist:         m.persist.WithLabelValues(kind),
		batch:           m.batch.WithLabelValues(kind),
		activation:      m.activation.WithLabelValues(kind),
		activations:     m.activations.WithLabelValues(kind),
		restoreMismatch: m.restoreMismatch.WithLabelValues(kind),
		nondeterminism:  m.loadFailures.WithLabelValues(kind, "nondeterminism"),
		corrupt:         m.loadFailures.WithLabelValues(kind, "corrupt"),
		loadOther:       m.loadFailures.WithLabelValues(kind, "other"),
		actionsStarted:  m.actionsStarted.WithLabelValues(kind),
		actionRetries:   m.actionRetries.WithLabelValues(kind),
		actionFails:     m.actionFailures.WithLabelValues(kind),
	}
}

// outcome counts one step.
func (k *kindMetrics) outcome(out machine.Outcome, err error, took time.Duration) {
	k.transition.Observe(took.Seconds())
	if err != nil {
		k.failed.Inc()
		return
	}
	switch out.Status {
	case machine.Accepted:
		k.accepted.Inc()
	case machine.Rejected:
		k.rejected.Inc()
	case machine.Duplicate:
		k.duplicate.Inc()
	case machine.Stale:
		k.stale.Inc()
	}
}
