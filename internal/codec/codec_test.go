package codec_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"

	"github.com/recoup-dunning/recoup/internal/codec"
)

// testKey returns a deterministic base64 32-byte key.
func testKey(seed byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{seed}, 32))
}

func mustParse(t *testing.T, spec string) *codec.Codec {
	t.Helper()
	c, err := codec.ParseKeys(spec)
	if err != nil {
		t.Fatalf("ParseKeys: %v", err)
	}
	return c
}

type customer struct {
	Name  string
	Email string
	Phone string
}

var alice = customer{Name: "Alice Liddell", Email: "alice@example.com", Phone: "+14155550123"}

func TestDataConverterRoundTrip(t *testing.T) {
	c := mustParse(t, "k1:"+testKey(1)+",k0:"+testKey(0))
	dc := codec.DataConverter(c)

	payloads, err := dc.ToPayloads(alice, "invoice INV-42 for Alice Liddell", 4200)
	if err != nil {
		t.Fatalf("ToPayloads: %v", err)
	}
	if got := len(payloads.Payloads); got != 3 {
		t.Fatalf("got %d payloads, want 3", got)
	}
	for i, p := range payloads.Payloads {
		if got := string(p.Metadata[converter.MetadataEncoding]); got != "binary/encrypted" {
			t.Errorf("payload %d: encoding = %q, want binary/encrypted", i, got)
		}
		if got := string(p.Metadata["encryption-key-id"]); got != "k1" {
			t.Errorf("payload %d: encryption-key-id = %q, want k1", i, got)
		}
		if len(p.Metadata) != 2 {
			t.Errorf("payload %d: metadata has %d keys, want 2 (json/plain must not leak)", i, len(p.Metadata))
		}
		for _, secret := range []string{alice.Name, alice.Email, alice.Phone, "Alice", "json/plain"} {
			if bytes.Contains(p.Data, []byte(secret)) {
				t.Errorf("payload %d: Data contains plaintext %q", i, secret)
			}
		}
	}

	var (
		gotCust customer
		gotMsg  string
		gotAmt  int
	)
	if err := dc.FromPayloads(payloads, &gotCust, &gotMsg, &gotAmt); err != nil {
		t.Fatalf("FromPayloads: %v", err)
	}
	if gotCust != alice || gotMsg != "invoice INV-42 for Alice Liddell" || gotAmt != 4200 {
		t.Fatalf("round trip mismatch: %+v %q %d", gotCust, gotMsg, gotAmt)
	}

	// Single payload API, and fresh nonces: same value encrypts differently.
	p1, err := dc.ToPayload(alice)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := dc.ToPayload(alice)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(p1.Data, p2.Data) {
		t.Fatal("two encryptions of the same value are identical: nonce reused")
	}
	if bytes.Equal(p1.Data[:12], p2.Data[:12]) {
		t.Fatal("nonce reused")
	}
	var back customer
	if err := dc.FromPayload(p2, &back); err != nil || back != alice {
		t.Fatalf("FromPayload = %+v, %v", back, err)
	}
	if s := dc.ToString(p1); !strings.Contains(s, alice.Email) {
		t.Fatalf("ToString should decode, got %q", s)
	}
}

func TestEncodeDoesNotMutateInputAndKeepsNil(t *testing.T) {
	c := mustParse(t, "k1:"+testKey(1))
	plain, err := converter.GetDefaultDataConverter().ToPayload(alice)
	if err != nil {
		t.Fatal(err)
	}
	orig := proto.Clone(plain)
	in := []*commonpb.Payload{plain, nil}
	out, err := c.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in[0], orig) {
		t.Fatal("Encode mutated its input")
	}
	if out[1] != nil {
		t.Fatal("nil payload should stay nil")
	}
	dec, err := c.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(dec[0], orig) || dec[1] != nil {
		t.Fatalf("Decode(Encode(x)) != x: %v", dec)
	}
}

func TestRotation(t *testing.T) {
	k1, k2 := testKey(1), testKey(2)
	a := mustParse(t, "k1:"+k1)
	b := mustParse(t, "k2:"+k2+",k1:"+k1)
	if got := fmt.Sprint(b.KeyIDs()); got != "[k2 k1]" {
		t.Fatalf("KeyIDs = %s", got)
	}

	plain, err := converter.GetDefaultDataConverter().ToPayloads(alice)
	if err != nil {
		t.Fatal(err)
	}

	byA, err := a.Encode(plain.Payloads)
	if err != nil {
		t.Fatal(err)
	}
	decByB, err := b.Decode(byA)
	if err != nil {
		t.Fatalf("B cannot decode k1 data: %v", err)
	}
	if !proto.Equal(decByB[0], plain.Payloads[0]) {
		t.Fatal("B decoded k1 data to something else")
	}

	byB, err := b.Encode(plain.Payloads)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(byB[0].Metadata["encryption-key-id"]); got != "k2" {
		t.Fatalf("B encrypted with %q, want k2 (first key)", got)
	}
	if _, err := a.Decode(byB); err == nil || !strings.Contains(err.Error(), `"k2"`) {
		t.Fatalf("A decoding k2 data: err = %v, want error naming k2", err)
	}
	// The same failure surfaces through the data converter.
	var c customer
	err = codec.DataConverter(a).FromPayloads(&commonpb.Payloads{Payloads: byB}, &c)
	if err == nil || !strings.Contains(err.Error(), "k2") {
		t.Fatalf("FromPayloads: err = %v, want error naming k2", err)
	}
}

func TestTamperedCiphertext(t *testing.T) {
	c := mustParse(t, "k1:"+testKey(1))
	enc, err := codec.DataConverter(c).ToPayload(alice)
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(p *commonpb.Payload)) *commonpb.Payload {
		p := proto.Clone(enc).(*commonpb.Payload)
		f(p)
		return p
	}
	cases := map[string]*commonpb.Payload{
		"flipped ciphertext byte": mutate(func(p *commonpb.Payload) { p.Data[len(p.Data)/2] ^= 0x01 }),
		"flipped nonce byte":      mutate(func(p *commonpb.Payload) { p.Data[0] ^= 0x80 }),
		"flipped tag byte":        mutate(func(p *commonpb.Payload) { p.Data[len(p.Data)-1] ^= 0x01 }),
		"truncated":               mutate(func(p *commonpb.Payload) { p.Data = p.Data[:len(p.Data)-1] }),
		"too short":               mutate(func(p *commonpb.Payload) { p.Data = p.Data[:5] }),
		"empty data":              mutate(func(p *commonpb.Payload) { p.Data = nil }),
		"missing key id":          mutate(func(p *commonpb.Payload) { delete(p.Metadata, "encryption-key-id") }),
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := c.Decode([]*commonpb.Payload{p}); err == nil {
				t.Fatal("Decode accepted a tampered payload")
			}
		})
	}

	// Same key id, different key material: authentication must fail.
	impostor := mustParse(t, "k1:"+testKey(9))
	if _, err := impostor.Decode([]*commonpb.Payload{enc}); err == nil || !strings.Contains(err.Error(), "k1") {
		t.Fatalf("wrong key: err = %v", err)
	}
}

func TestUnencryptedPassesThrough(t *testing.T) {
	c := mustParse(t, "k1:"+testKey(1))
	plain, err := converter.GetDefaultDataConverter().ToPayloads(alice, []byte{1, 2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := append(plain.Payloads, &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("binary/zlib")}, Data: []byte("x")}, nil)
	out, err := c.Decode(in)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	for i := range in {
		if out[i] != in[i] {
			t.Errorf("payload %d was not passed through unchanged", i)
		}
	}
	// History written before encryption was enabled still reads.
	var got customer
	if err := codec.DataConverter(c).FromPayloads(plain, &got); err != nil || got != alice {
		t.Fatalf("FromPayloads(plain) = %+v, %v", got, err)
	}
}

func TestConcurrentUse(t *testing.T) {
	c := mustParse(t, "k2:"+testKey(2)+",k1:"+testKey(1))
	dc := codec.DataConverter(c)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				want := customer{Name: fmt.Sprint("n", g, i), Email: "e@example.com", Phone: "+1"}
				p, err := dc.ToPayload(want)
				if err != nil {
					errs <- err
					return
				}
				var got customer
				if err := dc.FromPayload(p, &got); err != nil || got != want {
					errs <- fmt.Errorf("got %+v, %v", got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestParseKeys(t *testing.T) {
	good1, good2 := testKey(1), testKey(2)
	short := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{3}, 16))
	long := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{4}, 33))
	unpadded := base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{5}, 32))

	t.Run("valid", func(t *testing.T) {
		c, err := codec.ParseKeys(" k2:" + good2 + " , k1.old_A-9:" + good1 + " ")
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(c.KeyIDs()); got != "[k2 k1.old_A-9]" {
			t.Fatalf("KeyIDs = %s", got)
		}
		ids := c.KeyIDs()
		ids[0] = "mutated"
		if c.KeyIDs()[0] != "k2" {
			t.Fatal("KeyIDs exposes internal state")
		}
		for _, s := range []string{c.String(), fmt.Sprintf("%v %+v %#v", c, c, c)} {
			if strings.Contains(s, good1) || strings.Contains(s, good2) {
				t.Fatalf("formatting leaks key material: %s", s)
			}
		}
	})

	cases := []struct {
		name, spec string
		want       []string // substrings the error must contain
		secret     string   // must not appear in the error
	}{
		{"empty", "", []string{"RECOUP_CODEC_KEYS", "empty"}, ""},
		{"blank", "  ", []string{"RECOUP_CODEC_KEYS", "empty"}, ""},
		{"trailing comma", "k1:" + good1 + ",", []string{"RECOUP_CODEC_KEYS", "entry 2", "empty"}, good1},
		{"no colon", good1, []string{"RECOUP_CODEC_KEYS", "entry 1", "keyid:base64key"}, good1},
		{"empty id", ":" + good1, []string{"RECOUP_CODEC_KEYS", "entry 1", "bad key id"}, good1},
		{"bad id chars", "k 1:" + good1, []string{"RECOUP_CODEC_KEYS", "entry 1", "bad key id"}, good1},
		{"id too long", strings.Repeat("a", 65) + ":" + good1, []string{"RECOUP_CODEC_KEYS", "entry 1", "bad key id"}, good1},
		{"key pasted as id", good1 + ":k1", []string{"RECOUP_CODEC_KEYS", "entry 1", "bad key id"}, good1},
		{"empty key", "k1:" + good1 + ",k2:", []string{"RECOUP_CODEC_KEYS", "entry 2", `"k2"`, "empty"}, good1},
		{"bad base64", "k1:" + good1 + ",k2:not*base64!", []string{"RECOUP_CODEC_KEYS", "entry 2", `"k2"`, "base64"}, "not*base64!"},
		{"unpadded base64", "k1:" + unpadded, []string{"RECOUP_CODEC_KEYS", "entry 1", `"k1"`, "base64"}, unpadded},
		{"16-byte key", "k1:" + short, []string{"RECOUP_CODEC_KEYS", "entry 1", `"k1"`, "16 bytes", "want 32"}, short},
		{"33-byte key", "k1:" + long, []string{"RECOUP_CODEC_KEYS", "entry 1", `"k1"`, "33 bytes"}, long},
		{"duplicate id", "k1:" + good1 + ",k2:" + good2 + ",k1:" + good2, []string{"RECOUP_CODEC_KEYS", "entry 3", "duplicate", `"k1"`}, good2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := codec.ParseKeys(tc.spec)
			if err == nil {
				t.Fatalf("ParseKeys(%q) = %v, want error", tc.name, c)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if tc.secret != "" && strings.Contains(msg, tc.secret) {
				t.Errorf("error leaks key material: %q", msg)
			}
		})
	}
}
