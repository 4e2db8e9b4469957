// Package codec encrypts Recoup's Temporal payloads with AES-256-GCM (keys from
// RECOUP_CODEC_KEYS, rotated by prepending) so that the Temporal service only sees
// ciphertext, and serves the codec endpoint the Web UI and CLI decode through. Format and
// rotation: docs/PACKAGES.md.
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

const (
	// EnvKeys is the environment variable holding the key list parsed by
	// ParseKeys.
	EnvKeys = "RECOUP_CODEC_KEYS"
	// EnvAuthToken is the environment variable holding the bearer token
	// required by Handler.
	EnvAuthToken = "CODEC_AUTH_TOKEN"

	// MetadataEncodingEncrypted is the value of the "encoding" metadata key
	// (converter.MetadataEncoding) on encrypted payloads.
	MetadataEncodingEncrypted = "binary/encrypted"
	// MetadataEncryptionKeyID is the metadata key naming the key that
	// encrypted the payload.
	MetadataEncryptionKeyID = "encryption-key-id"

	keySize   = 32 // AES-256
	nonceSize = 12 // standard GCM nonce
	maxIDLen  = 64
)

type key struct {
	id   string
	aead cipher.AEAD
}

// Codec is a converter.PayloadCodec that encrypts payloads with AES-256-GCM.
// It is immutable after ParseKeys and safe for concurrent use.
type Codec struct {
	keys []key          // keys[0] encrypts
	byID map[string]int // id -> index in keys
}

var _ converter.PayloadCodec = (*Codec)(nil)

// ParseKeys parses a RECOUP_CODEC_KEYS value: comma-separated entries of the
// form "keyid:base64key" where base64key is the standard (padded) base64
// encoding of exactly 32 random bytes, e.g. `openssl rand -base64 32`.
// Key ids are 1-64 characters from [A-Za-z0-9._-]. Whitespace around entries
// is ignored. The first entry is the encryption key; all entries decrypt.
//
// Errors name RECOUP_CODEC_KEYS and the offending entry (1-based position
// and, once it is known to be well formed, its id); they never contain key
// material.
func ParseKeys(spec string) (*Codec, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, fmt.Errorf("%s is empty: expected comma-separated keyid:base64(32 bytes) entries", EnvKeys)
	}
	entries := strings.Split(spec, ",")
	c := &Codec{
		keys: make([]key, 0, len(entries)),
		byID: make(map[string]int, len(entries)),
	}
	for i, raw := range entries {
		n := i + 1
		entry := strings.TrimSpace(raw)
		if entry == "" {
			return nil, fmt.Errorf("%s entry %d is empty", EnvKeys, n)
		}
		id, b64, ok := strings.Cut(entry, ":")
		if !ok {
			return nil, fmt.Errorf("%s entry %d: expected keyid:base64key (no ':' found)", EnvKeys, n)
		}
		id, b64 = strings.TrimSpace(id), strings.TrimSpace(b64)
		// The id is deliberately not echoed when it is malformed: a
		// malformed id is often key material pasted in the wrong place.
		if err := validateID(id); err != nil {
			return nil, fmt.Errorf("%s entry %d: bad key id: %v", EnvKeys, n, err)
		}
		if _, dup := c.byID[id]; dup {
			return nil, fmt.Errorf("%s entry %d: duplicate key id %q", EnvKeys, n, id)
		}
		if b64 == "" {
			return nil, fmt.Errorf("%s entry %d (key id %q): key is empty", EnvKeys, n, id)
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			// err from encoding/base64 only carries an offset, never data.
			return nil, fmt.Errorf("%s entry %d (key id %q): key is not valid standard base64", EnvKeys, n, id)
		}
		if len(raw) != keySize {
			return nil, fmt.Errorf("%s entry %d (key id %q): key decodes to %d bytes, want %d (AES-256)", EnvKeys, n, id, len(raw), keySize)
		}
		block, err := aes.NewCipher(raw)
		clear(raw)
		if err != nil {
			return nil, fmt.Errorf("%s entry %d (key id %q): %v", EnvKeys, n, id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%s entry %d (key id %q): %v", EnvKeys, n, id, err)
		}
		c.byID[id] = len(c.keys)
		c.keys = append(c.keys, key{id: id, aead: aead})
	}
	return c, nil
}

func validateID(id string) error {
	if id == "" {
		return errors.New("empty")
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("longer than %d characters", maxIDLen)
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return errors.New("only letters, digits, '.', '_' and '-' are allowed")
		}
	}
	return nil
}

// KeyIDs returns the configured key ids in order; the first one encrypts.
func (c *Codec) KeyIDs() []string {
	if c == nil {
		return nil
	}
	ids := make([]string, len(c.keys))
	for i, k := range c.keys {
		ids[i] = k.id
	}
	return ids
}

// String describes the codec by key ids only, so that accidentally logging
// a *Codec never prints key material.
func (c *Codec) String() string {
	return "codec.Codec{keys: [" + strings.Join(c.KeyIDs(), ",") + "]}"
}

// GoString is String, for %#v.
func (c *Codec) GoString() string { return c.String() }

// Encode implements converter.PayloadCodec: each non-nil payload is replaced
// by its encryption under the first key. The input is not mutated.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	if c == nil || len(c.keys) == 0 {
		return payloads, errors.New("codec: no encryption key configured")
	}
	k := c.keys[0]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if p == nil {
			continue
		}
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("codec: marshal payload %d: %w", i, err)
		}
		buf := make([]byte, nonceSize, nonceSize+len(plain)+k.aead.Overhead())
		if _, err := rand.Read(buf); err != nil {
			return payloads, fmt.Errorf("codec: generate nonce: %w", err)
		}
		sealed := k.aead.Seal(buf, buf[:nonceSize], plain, nil)
		clear(plain)
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(MetadataEncodingEncrypted),
				MetadataEncryptionKeyID:    []byte(k.id),
			},
			Data: sealed,
		}
	}
	return out, nil
}

// Decode implements converter.PayloadCodec. Payloads whose encoding is not
// "binary/encrypted" are returned unchanged; encrypted payloads are opened
// with the key named by their "encryption-key-id" metadata. An unknown key
// id, a truncated or tampered ciphertext, or a wrong key is an error.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if p == nil || string(p.GetMetadata()[converter.MetadataEncoding]) != MetadataEncodingEncrypted {
			out[i] = p
			continue
		}
		rawID, ok := p.Metadata[MetadataEncryptionKeyID]
		if !ok || len(rawID) == 0 {
			return payloads, fmt.Errorf("codec: encrypted payload %d has no %q metadata", i, MetadataEncryptionKeyID)
		}
		id := string(rawID)
		idx, ok := -1, false
		if c != nil {
			idx, ok = c.byID[id]
		}
		if !ok {
			return payloads, fmt.Errorf("codec: payload %d is encrypted with unknown key id %q (configured: [%s]); add it to %s",
				i, id, strings.Join(c.KeyIDs(), ","), EnvKeys)
		}
		k := c.keys[idx]
		if len(p.Data) < nonceSize+k.aead.Overhead() {
			return payloads, fmt.Errorf("codec: payload %d (key id %q): ciphertext too short (%d bytes)", i, id, len(p.Data))
		}
		plain, err := k.aead.Open(nil, p.Data[:nonceSize], p.Data[nonceSize:], nil)
		if err != nil {
			return payloads, fmt.Errorf("codec: payload %d (key id %q): decryption failed: ciphertext corrupted or wrong key", i, id)
		}
		dec := &commonpb.Payload{}
		if err := proto.Unmarshal(plain, dec); err != nil {
			return payloads, fmt.Errorf("codec: payload %d (key id %q): unmarshal decrypted payload: %w", i, id, err)
		}
		out[i] = dec
	}
	return out, nil
}

// DataConverter returns the SDK default data converter wrapped with c, for
// client.Options.DataConverter on both clients and workers.
func DataConverter(c *Codec) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}
