package spike

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"time"
)

// MaxSeen bounds the event ids the detector remembers (12 bytes each in its state).
const MaxSeen = 20000

// seenWindow is the window of event ids counted recently, in the order counted: an id is
// kept while its record's bucket is within the long window (a redelivery after that is late
// anyway), and at most MaxSeen ids are kept, the oldest going first. Ids are kept as 64-bit
// FNV-1a hashes; in JSON the window is one base64 string.
type seenWindow struct {
	ids   []seenID
	index map[uint64]struct{} // built on first use
}

type seenID struct {
	hash   uint64
	minute uint32 // the record's bucket, in Unix minutes
}

func hashID(id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64()
}

func (w *seenWindow) build() {
	if w.index == nil {
		w.index = make(map[uint64]struct{}, len(w.ids))
		for _, s := range w.ids {
			w.index[s.hash] = struct{}{}
		}
	}
}

// add remembers id, counted in the bucket starting at bucket; false if it was seen already.
func (w *seenWindow) add(id string, bucket time.Time) bool {
	w.build()
	h := hashID(id)
	if _, ok := w.index[h]; ok {
		return false
	}
	if len(w.ids) >= MaxSeen {
		w.drop(len(w.ids) - MaxSeen + 1)
	}
	w.ids = append(w.ids, seenID{hash: h, minute: uint32(bucket.Unix() / 60)})
	w.index[h] = struct{}{}
	return true
}

// expire forgets the ids, from the oldest counted, whose bucket starts before oldest.
func (w *seenWindow) expire(oldest time.Time) {
	m := oldest.Unix() / 60
	n := 0
	for n < len(w.ids) && int64(w.ids[n].minute) < m {
		n++
	}
	w.drop(n)
}

func (w *seenWindow) drop(n int) {
	if n <= 0 {
		return
	}
	w.build()
	for _, s := range w.ids[:n] {
		delete(w.index, s.hash)
	}
	w.ids = w.ids[n:] // append reallocates once the capacity left runs out, keeping only these
}

// Len is how many event ids the window holds.
func (w seenWindow) Len() int { return len(w.ids) }

// IsZero reports an empty window (omitted from JSON).
func (w seenWindow) IsZero() bool { return len(w.ids) == 0 }

func (w seenWindow) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 12*len(w.ids))
	for _, s := range w.ids {
		b = binary.BigEndian.AppendUint64(b, s.hash)
		b = binary.BigEndian.AppendUint32(b, s.minute)
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(b))
}

func (w *seenWindow) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("spike state: seen: %w", err)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b)%12 != 0 {
		return fmt.Errorf("spike state: seen is not base64 of 12-byte entries (%d bytes, %v)", len(b), err)
	}
	w.ids, w.index = make([]seenID, 0, len(b)/12), nil
	for ; len(b) > 0; b = b[12:] {
		w.ids = append(w.ids, seenID{hash: binary.BigEndian.Uint64(b), minute: binary.BigEndian.Uint32(b[8:])})
	}
	return nil
}
