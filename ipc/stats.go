package ipc

import (
	"reflect"
	"time"
)

// The figures of a worker's connections.Stats reach Load by name: every
// Stats field has a Load field of the same name (a time.Duration one
// named Name+"Seconds", in seconds), which CopyStats fills, and
// master/metrics.go's workerFigures has the row that exports it; the
// JSON status carries it as it is. A new figure is a counter in
// connections (and its Stats field), its Load field here, and its row
// there; master's TestFiguresCover fails for a Stats field without
// either.

var durationType = reflect.TypeFor[time.Duration]()

// LoadField is the name of the Load field that carries the Stats field f:
// one name per counter, from connections.Stats to the status.
func LoadField(f reflect.StructField) string {
	if f.Type == durationType {
		return f.Name + "Seconds"
	}
	return f.Name
}

// CopyStats sets the fields of l that carry the fields of st (a
// connections.Stats, or any struct: see LoadField); a field of st with no
// field of a matching kind in l is skipped (master's TestFiguresCover
// keeps that from happening to a connections.Stats field).
func (l *Load) CopyStats(st any) {
	src := reflect.ValueOf(st)
	if src.Kind() == reflect.Pointer {
		src = src.Elem()
	}
	dst := reflect.ValueOf(l).Elem()
	t := src.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		to := dst.FieldByName(LoadField(f))
		if !to.IsValid() {
			continue
		}
		from := src.Field(i)
		switch {
		case f.Type == durationType && to.Kind() == reflect.Float64:
			to.SetFloat(time.Duration(from.Int()).Seconds())
		case from.Type().AssignableTo(to.Type()):
			to.Set(from)
		case from.CanConvert(to.Type()) && from.Kind() != reflect.String && to.Kind() != reflect.String:
			to.Set(from.Convert(to.Type()))
		}
	}
}

// RequestDurationBuckets are the upper bounds, in seconds, of the buckets
// of a worker's request duration histogram (Load.RequestDuration): from
// 50 µs to 10 s.
var RequestDurationBuckets = [...]float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// TLSHandshakeDurationBuckets are the upper bounds, in seconds, of the
// buckets of a worker's TLS handshake duration histogram
// (Load.TLSHandshakeDuration): from 1 ms to the handshake timeout's 10 s.
var TLSHandshakeDurationBuckets = [...]float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// LoopLagBuckets are the upper bounds, in seconds, of the buckets of a
// worker's event-loop lag histogram (Load.LoopLag): connections.LoopLagBounds
// (worker's TestLoopLagBuckets keeps them equal), from 50 µs to 10 s.
var LoopLagBuckets = [...]float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Histogram is a worker's count of durations by bucket: Counts[i] counts
// those at most RequestDurationBuckets[i] and above the bound before (not
// cumulative), and the last, one more than the bounds, those above every
// bound; SumSeconds is their sum.
type Histogram struct {
	Counts     []uint64 `json:"counts"`
	SumSeconds float64  `json:"sum_seconds"`
}

// Add adds o's counts and sum to h.
func (h *Histogram) Add(o *Histogram) {
	if o == nil {
		return
	}
	if len(h.Counts) < len(o.Counts) {
		h.Counts = append(h.Counts, make([]uint64, len(o.Counts)-len(h.Counts))...)
	}
	for i, n := range o.Counts {
		h.Counts[i] += n
	}
	h.SumSeconds += o.SumSeconds
}
