package experiment

import "math"

// The statistics the analysis uses, in one place so the report can state them.

// zQuantile is the standard normal quantile: P(Z <= zQuantile(p)) = p, for 0 < p < 1.
func zQuantile(p float64) float64 { return -math.Sqrt2 * math.Erfcinv(2*p) }

// twoSidedP is the two-sided p-value of a standard normal statistic z.
func twoSidedP(z float64) float64 { return math.Erfc(math.Abs(z) / math.Sqrt2) }

// Wilson is the Wilson score interval for a proportion of k successes in n trials at critical
// value z (1.96 for 95%). With n = 0 it is [0, 1].
func Wilson(k, n int, z float64) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	nf, p := float64(n), float64(k)/float64(n)
	den := 1 + z*z/nf
	mid := (p + z*z/(2*nf)) / den
	half := z / den * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf))
	return math.Max(0, mid-half), math.Min(1, mid+half)
}

// TwoProportionZ is the two-proportion z-test of p2 - p1 with the pooled standard error
// sqrt(p(1-p)(1/n1+1/n2)), p = (k1+k2)/(n1+n2): the statistic and its two-sided p-value.
// Without variance (no runs, or all or none recovered in both arms) z = 0 and p = 1.
func TwoProportionZ(k1, n1, k2, n2 int) (z, p float64) {
	if n1 == 0 || n2 == 0 {
		return 0, 1
	}
	pool := float64(k1+k2) / float64(n1+n2)
	se := math.Sqrt(pool * (1 - pool) * (1/float64(n1) + 1/float64(n2)))
	if se == 0 {
		return 0, 1
	}
	z = (float64(k2)/float64(n2) - float64(k1)/float64(n1)) / se
	return z, twoSidedP(z)
}

// DiffCI is the Wald interval of p2 - p1 with the unpooled standard error at critical value z.
func DiffCI(k1, n1, k2, n2 int, z float64) (lo, hi float64) {
	if n1 == 0 || n2 == 0 {
		return -1, 1
	}
	p1, p2 := float64(k1)/float64(n1), float64(k2)/float64(n2)
	se := math.Sqrt(p1*(1-p1)/float64(n1) + p2*(1-p2)/float64(n2))
	d := p2 - p1
	return math.Max(-1, d-z*se), math.Min(1, d+z*se)
}

// SampleSize is the runs needed in each of two equal arms for a two-sided two-proportion
// z-test at level alpha to detect a difference of mde (a fraction: 0.05 is 5 points) from a
// baseline rate with the given power (Fleiss' formula without continuity correction).
func SampleSize(baseline, mde, alpha, power float64) int {
	p1 := math.Min(math.Max(baseline, 0), 1)
	p2 := p1 + mde
	if p2 > 1 {
		p2 = p1 - mde
	}
	if mde <= 0 || p2 < 0 {
		return math.MaxInt32
	}
	za, zb := zQuantile(1-alpha/2), zQuantile(power)
	pbar := (p1 + p2) / 2
	num := za*math.Sqrt(2*pbar*(1-pbar)) + zb*math.Sqrt(p1*(1-p1)+p2*(1-p2))
	return int(math.Ceil(num * num / (mde * mde)))
}

// MeanCI is the mean of xs with a normal-approximation interval mean ± z·s/√n (s the sample
// standard deviation). With fewer than two values the interval is the mean itself.
func MeanCI(xs []float64, z float64) (mean, lo, hi float64) {
	n := float64(len(xs))
	if n == 0 {
		return 0, 0, 0
	}
	for _, x := range xs {
		mean += x
	}
	mean /= n
	if n < 2 {
		return mean, mean, mean
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	half := z * math.Sqrt(ss/(n-1)/n)
	return mean, mean - half, mean + half
}

// Stratum is one stratum of a stratified comparison: n0 runs of the base arm of which k0
// recovered, n1 of the compared arm of which k1.
type Stratum struct{ N0, K0, N1, K1 int }

// MantelHaenszelRD is the Mantel–Haenszel common risk difference p1 − p0 over the strata,
// weights n0·n1/(n0+n1), with Sato's (1989) variance estimator, which holds both for few
// large strata and for many sparse ones. Strata missing an arm carry no weight; with no
// weight at all the difference is 0 and its variance 0.
func MantelHaenszelRD(strata []Stratum) (rd, variance float64) {
	var num, w, sp, sq float64
	for _, s := range strata {
		if s.N0 == 0 || s.N1 == 0 {
			continue
		}
		n0, n1, k0, k1 := float64(s.N0), float64(s.N1), float64(s.K0), float64(s.K1)
		n := n0 + n1
		num += (k1*n0 - k0*n1) / n
		w += n0 * n1 / n
		sp += (n1*n1*k0 - n0*n0*k1 + n1*n0*(n0-n1)/2) / (n * n)
		sq += (k1*(n0-k0) + k0*(n1-k1)) / (2 * n)
	}
	if w == 0 {
		return 0, 0
	}
	rd = num / w
	variance = math.Max(0, (rd*sp+sq)/(w*w))
	if variance == 0 && rd != 0 {
		// Sato's estimate vanishes when every stratum's arms are all-or-none apart (none
		// recovered in one arm, all in the other), which would make the plainest difference
		// untestable: take the same-weighted variance of the within-stratum differences with
		// each rate shrunk by one recovery and one loss, (k+1)/(n+2) (Agresti and Caffo 2000),
		// which is positive and shrinks as the strata grow.
		for _, s := range strata {
			if s.N0 == 0 || s.N1 == 0 {
				continue
			}
			n0, n1 := float64(s.N0), float64(s.N1)
			p0, p1 := (float64(s.K0)+1)/(n0+2), (float64(s.K1)+1)/(n1+2)
			wk := n0 * n1 / (n0 + n1)
			variance += wk * wk * (p0*(1-p0)/n0 + p1*(1-p1)/n1)
		}
		variance /= w * w
	}
	return rd, variance
}

// The always-valid test is the mixture sequential probability ratio test (mSPRT; Johari,
// Pekelis and Walsh, "Always valid inference", 2017) for a difference estimated as normal
// with variance v, against a normal mixing distribution N(0, tau²) of the true difference:
//
//	Λ = sqrt(v/(v+tau²)) · exp(d²·tau² / (2v(v+tau²)))
//
// Under no difference Λ is a martingale, so by Ville's inequality the chance that it ever
// reaches 1/α, at any number of looks at any times, is at most α.

// MixtureLR is the mSPRT's likelihood ratio Λ for estimate d with variance v (> 0).
func MixtureLR(d, v, tau float64) float64 {
	t2 := tau * tau
	return math.Sqrt(v/(v+t2)) * math.Exp(d*d*t2/(2*v*(v+t2)))
}

// AlwaysValidP is the mSPRT's always-valid p-value min(1, 1/Λ): rejecting whenever it is
// below α, at whatever looks, errs with probability at most α. Without variance it is 1.
func AlwaysValidP(d, v, tau float64) float64 {
	if v <= 0 {
		return 1
	}
	return math.Min(1, 1/MixtureLR(d, v, tau))
}

// ConfidenceSequence is the always-valid (1−α) interval of the difference: the values d0
// the mSPRT of d − d0 does not reject, d ± sqrt(v(v+tau²)/tau² · (2 ln(1/α) + ln((v+tau²)/v))).
// It covers the true difference at every look at once with probability at least 1−α, and
// excludes 0 exactly when AlwaysValidP < α. Without variance it is [d, d].
func ConfidenceSequence(d, v, tau, alpha float64) (lo, hi float64) {
	half := csHalfWidth(v, tau, alpha)
	return d - half, d + half
}

func csHalfWidth(v, tau, alpha float64) float64 {
	if v <= 0 {
		return 0
	}
	t2 := tau * tau
	return math.Sqrt(v * (v + t2) / t2 * (2*math.Log(1/alpha) + math.Log((v+t2)/v)))
}

// SequentialSampleSize is the runs needed in each of two equal arms for a look with the
// mSPRT at level alpha (mixing scale tau) to detect a difference of mde from a baseline rate
// with the given power: the least n with mde − h(n) ≥ z_power·sqrt(v(n)), h(n) the
// confidence sequence's half-width and v(n) = (p1(1−p1) + p2(1−p2))/n. It is larger than the
// fixed-horizon SampleSize: the price of looking as often as one likes.
func SequentialSampleSize(baseline, mde, alpha, power, tau float64) int {
	return SequentialSampleSizeRatio(baseline, mde, alpha, power, tau, 1)
}

// SequentialSampleSizeRatio is SequentialSampleSize for arms of unequal size: the compared
// arm has ratio times the base arm's runs (a 10% holdout's control against the treatment:
// 9). It is the runs needed in the smaller arm, the larger having ratio (or 1/ratio) times
// as many; with ratio 1 it is SequentialSampleSize. A ratio that is not positive counts as 1.
func SequentialSampleSizeRatio(baseline, mde, alpha, power, tau, ratio float64) int {
	if !(ratio > 0) || math.IsInf(ratio, 0) {
		ratio = 1
	}
	p1 := math.Min(math.Max(baseline, 0), 1)
	p2 := p1 + mde
	if p2 > 1 {
		p2 = p1 - mde
	}
	if mde <= 0 || p2 < 0 || tau <= 0 {
		return math.MaxInt32
	}
	// v(n) for n runs in the smaller arm: each arm's variance over its own runs.
	var0, var1 := p1*(1-p1), p2*(1-p2) // base, compared
	varOne := var0 + var1/ratio
	if ratio < 1 {
		varOne = var0*ratio + var1
	}
	if varOne == 0 {
		return 1
	}
	zb := zQuantile(power)
	ok := func(n int) bool {
		v := varOne / float64(n)
		return mde-csHalfWidth(v, tau, alpha) >= zb*math.Sqrt(v)
	}
	hi := 1
	for !ok(hi) {
		if hi > math.MaxInt32/2 {
			return math.MaxInt32
		}
		hi *= 2
	}
	lo := hi / 2 // !ok(lo) unless lo == 0
	for lo+1 < hi {
		mid := (lo + hi) / 2
		if ok(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}
