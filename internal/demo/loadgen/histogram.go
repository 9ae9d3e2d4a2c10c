package loadgen

import (
	"math/bits"
	"time"
)

// histogram is a log-linear latency histogram in microseconds (HDR-style): values
// below 1024µs are exact, larger ones keep 9 significant bits (≈0.2% error).
type histogram struct {
	counts [histBuckets]int64
	n      int64
	max    time.Duration
}

const (
	histLinear  = 1024
	histSub     = 512
	histExps    = 40 // up to 2^49µs, far beyond any request timeout
	histBuckets = histLinear + histExps*histSub
)

func bucketOf(us uint64) int {
	if us < histLinear {
		return int(us)
	}
	shift := bits.Len64(us) - 10 // ≥ 1
	sub := int(us>>uint(shift)) - histSub
	i := histLinear + (shift-1)*histSub + sub
	return min(i, histBuckets-1)
}

// bucketValue returns the midpoint of bucket i, in microseconds.
func bucketValue(i int) uint64 {
	if i < histLinear {
		return uint64(i)
	}
	shift := (i-histLinear)/histSub + 1
	sub := uint64((i-histLinear)%histSub + histSub)
	lo := sub << uint(shift)
	return lo + (uint64(1)<<uint(shift))/2
}

func (h *histogram) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d/time.Microsecond))]++
	h.n++
	h.max = max(h.max, d)
}

// quantiles returns the latencies at each of qs (ascending, 0..1) in one pass,
// never more than the maximum seen.
func (h *histogram) quantiles(qs ...float64) []time.Duration {
	out := make([]time.Duration, len(qs))
	if h.n == 0 {
		return out
	}
	last := bucketOf(uint64(h.max / time.Microsecond))
	var seen int64
	j := 0
	for i := 0; i <= last && j < len(qs); i++ {
		seen += h.counts[i]
		for j < len(qs) && seen >= rankOf(qs[j], h.n) {
			out[j] = min(time.Duration(bucketValue(i))*time.Microsecond, h.max)
			if rankOf(qs[j], h.n) == h.n {
				out[j] = h.max
			}
			j++
		}
	}
	for ; j < len(qs); j++ {
		out[j] = h.max
	}
	return out
}

func (h *histogram) quantile(q float64) time.Duration { return h.quantiles(q)[0] }

func rankOf(q float64, n int64) int64 {
	return min(max(int64(q*float64(n)+0.5), 1), n)
}
