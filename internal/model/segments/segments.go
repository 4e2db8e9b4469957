// Package segments counts the SMS segments a text is billed as, the way carriers split it
// (GSM-7 or UCS-2, concatenation headers, escapes and surrogate pairs never split). The
// rules: docs/PACKAGES.md.
package segments

import "unicode/utf8"

// Encoding is the data coding an SMS is sent with.
type Encoding string

// The two encodings.
const (
	GSM7 Encoding = "GSM-7"
	UCS2 Encoding = "UCS-2"
)

// Segment capacities.
const (
	GSM7Single = 160 // septets in a single GSM-7 message
	GSM7Multi  = 153 // septets per segment of a concatenated GSM-7 message
	UCS2Single = 70  // UTF-16 code units in a single UCS-2 message
	UCS2Multi  = 67  // UTF-16 code units per segment of a concatenated UCS-2 message
)

// Count is how a text is sent.
type Count struct {
	Encoding Encoding
	// Units is the length in the encoding: septets for GSM-7 (an extension character counts
	// 2), UTF-16 code units for UCS-2 (a character outside the BMP counts 2).
	Units int
	// Segments is the number of messages billed. The empty text is 0 segments.
	Segments int
	// PerSegment is the capacity of each segment the text was split into: 160 or 153 for
	// GSM-7, 70 or 67 for UCS-2 (the single-message capacity when Segments <= 1).
	PerSegment int
}

// basic is the GSM 03.38 basic character set (0x1B, the escape to the extension table, left
// out), in table order.
const basic = "@£$¥èéùìòÇ\nØø\rÅå" +
	"Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ" +
	" !\"#¤%&'()*+,-./" +
	"0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNO" +
	"PQRSTUVWXYZÄÖÑÜ§" +
	"¿abcdefghijklmno" +
	"pqrstuvwxyzäöñüà"

// extension is the GSM 03.38 extension table: each is sent as ESC + code, 2 septets.
const extension = "\f^{}\\[~]|€"

var gsmUnits = func() map[rune]int {
	m := make(map[rune]int, 137)
	for _, r := range basic {
		m[r] = 1
	}
	for _, r := range extension {
		m[r] = 2
	}
	return m
}()

// GSMSeptets returns the septets r takes in GSM-7 (1 basic, 2 extension) and whether r can
// be sent in GSM-7 at all.
func GSMSeptets(r rune) (int, bool) {
	n, ok := gsmUnits[r]
	return n, ok
}

// Of counts the segments of text. Invalid UTF-8 bytes are counted as U+FFFD (UCS-2), as a
// provider would send them.
func Of(text string) Count {
	if text == "" {
		return Count{Encoding: GSM7, PerSegment: GSM7Single}
	}
	units := make([]int, 0, len(text))
	gsm := true
	for _, r := range text {
		n, ok := gsmUnits[r]
		if !ok {
			gsm = false
			break
		}
		units = append(units, n)
	}
	if gsm {
		return split(GSM7, units, GSM7Single, GSM7Multi)
	}
	units = units[:0]
	for _, r := range text {
		if r == utf8.RuneError {
			units = append(units, 1) // U+FFFD (or a replaced invalid byte): one code unit
			continue
		}
		if r > 0xFFFF {
			units = append(units, 2) // surrogate pair
		} else {
			units = append(units, 1)
		}
	}
	return split(UCS2, units, UCS2Single, UCS2Multi)
}

// split packs the characters (their sizes in units) into segments: one of single capacity
// when everything fits, else greedily into segments of multi capacity without splitting a
// character.
func split(enc Encoding, units []int, single, multi int) Count {
	total := 0
	for _, n := range units {
		total += n
	}
	if total <= single {
		return Count{Encoding: enc, Units: total, Segments: 1, PerSegment: single}
	}
	segs, used := 1, 0
	for _, n := range units {
		if used+n > multi {
			segs++
			used = 0
		}
		used += n
	}
	return Count{Encoding: enc, Units: total, Segments: segs, PerSegment: multi}
}

// Fits reports whether text is sent in at most maxSegments segments (the empty text fits
// any maxSegments >= 0).
func Fits(text string, maxSegments int) bool {
	return Of(text).Segments <= maxSegments
}
