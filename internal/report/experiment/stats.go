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
