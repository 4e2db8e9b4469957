package observability

// Recoup's Prometheus metrics (client_golang), declared once, on a registry the binaries
// expose at /metrics.

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// IngressMetrics holds the event ingress metrics.
type IngressMetrics struct {
	// Received counts events by source (http, stripe, kafka, cli), type and result
	// (accepted, duplicate, conflict, invalid, unauthorized, ignored, unavailable, too_large, unsupported_media_type).
	Received *prometheus.CounterVec
	// Deliveries counts relay deliveries to Temporal by result (delivered, parked, failed).
	Deliveries *prometheus.CounterVec
	// DeliveryLag is the time from an event being received to it reaching its run.
	DeliveryLag prometheus.Histogram
	// Backlog is the number of accepted events not yet delivered; BacklogAge the age of the oldest.
	Backlog    prometheus.Gauge
	BacklogAge prometheus.Gauge
	// DetectorBacklog is the number of recorded failures and successes the spike detector
	// has not been fed yet; DetectorBacklogAge the age of the oldest.
	DetectorBacklog    prometheus.Gauge
	DetectorBacklogAge prometheus.Gauge
	// Clamped counts events by source whose occurred_at lay further in the future than the
	// allowed clock skew and was recorded as received + skew.
	Clamped *prometheus.CounterVec
	// Replies counts customers' replies by what became of them: delivered (to the open runs
	// of its customer), no_customer (no profile has the sender's address), ambiguous (several
	// do: left for support), shared_number (a STOP or START applied to every customer on the
	// number), unverified (an email neither SPF nor DKIM vouches for), expired (no run of
	// its customer opened within the park window: left for support), closed (nothing for a
	// run to hear: START, HELP, empty, or a STOP with no open run).
	Replies *prometheus.CounterVec
	// RepliesParked is the number of replies of matched customers waiting for a run to open.
	RepliesParked prometheus.Gauge
}

// NewIngressMetrics registers the ingress metrics on r.
func NewIngressMetrics(r prometheus.Registerer) *IngressMetrics {
	m := &IngressMetrics{
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoup_events_received_total",
			Help: "Events received by the ingress, by source, type and result.",
		}, []string{"source", "type", "result"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoup_event_deliveries_total",
			Help: "Deliveries of recorded events to Temporal by the relay, by result.",
		}, []string{"result"}),
		DeliveryLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "recoup_event_delivery_lag_seconds",
			Help:    "Time from an event being received to it being delivered to its dunning run.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900},
		}),
		Backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recoup_event_backlog",
			Help: "Accepted events not yet delivered to Temporal.",
		}),
		BacklogAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recoup_event_backlog_oldest_seconds",
			Help: "Age of the oldest accepted event not yet delivered.",
		}),
		DetectorBacklog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recoup_detector_feed_backlog",
			Help: "Recorded payment failures and successes not yet fed to the failure-spike detector.",
		}),
		DetectorBacklogAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recoup_detector_feed_backlog_oldest_seconds",
			Help: "Age of the oldest recorded payment failure or success not yet fed to the detector.",
		}),
		Clamped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoup_events_clock_clamped_total",
			Help: "Events whose occurred_at lay in the future beyond RECOUP_MAX_CLOCK_SKEW, recorded as received + skew, by source.",
		}, []string{"source"}),
		Replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoup_replies_total",
			Help: "Customers' replies by outcome: delivered, no_customer, ambiguous, shared_number, unverified, expired, closed.",
		}, []string{"result"}),
		RepliesParked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recoup_replies_parked",
			Help: "Replies of matched customers waiting for a run of theirs to open.",
		}),
	}
	r.MustRegister(m.Received, m.Deliveries, m.DeliveryLag, m.Backlog, m.BacklogAge, m.DetectorBacklog, m.DetectorBacklogAge, m.Clamped, m.Replies, m.RepliesParked)
	return m
}
