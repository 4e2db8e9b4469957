package codec_test

import (
	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// protoJSON renders payloads the way the Web UI sends them (proto3 JSON).
func protoJSON(p []*commonpb.Payload) (string, error) {
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: p})
	return string(b), err
}
