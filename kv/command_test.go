package kv

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var equateEmpty = cmpopts.EquateEmpty()

func TestValidate(t *testing.T) {
	big := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	k := []byte("k")
	tests := []struct {
		name  string
		c     Command
		want  error  // nil: valid
		field string // must appear in the message
	}{
		{"get", Command{Op: OpGet, Key: k}, nil, ""},
		{"put empty value", Command{Op: OpPut, Key: k}, nil, ""},
		{"put max", Command{Op: OpPut, Key: big(MaxKeyBytes), Value: big(MaxValueBytes)}, nil, ""},
		{"range all", Command{Op: OpRange}, nil, ""},
		{"range prefix", Command{Op: OpRange, Key: k, Prefix: true, Limit: MaxRangeLimit}, nil, ""},
		{"cas value", Command{Op: OpCAS, Key: k, Value: k, Expect: k}, nil, ""},
		{"cas version 0", Command{Op: OpCAS, Key: k, ExpectByVersion: true}, nil, ""},
		{"cas absent", Command{Op: OpCAS, Key: k, Value: k, ExpectAbsent: true}, nil, ""},
		{"zero op", Command{Key: k}, ErrInvalidCommand, "Op 0"},
		{"unknown op", Command{Op: opEnd, Key: k}, ErrInvalidCommand, "Op 7"},
		{"empty key", Command{Op: OpPut}, ErrInvalidCommand, "Key is empty"},
		{"key too large", Command{Op: OpGet, Key: big(MaxKeyBytes + 1)}, ErrKeyTooLarge, "Key is 4097 bytes"},
		{"end too large", Command{Op: OpRange, End: big(MaxKeyBytes + 1)}, ErrKeyTooLarge, "End"},
		{"value too large", Command{Op: OpPut, Key: k, Value: big(MaxValueBytes + 1)}, ErrValueTooLarge, "Value is"},
		{"expect too large", Command{Op: OpCAS, Key: k, Expect: big(MaxValueBytes + 1)}, ErrValueTooLarge, "Expect is"},
		{"cas sum too large", Command{Op: OpCAS, Key: k, Value: big(MaxValueBytes/2 + 1), Expect: big(MaxValueBytes / 2)}, ErrValueTooLarge, "Value+Expect"},
		{"get with value", Command{Op: OpGet, Key: k, Value: k}, ErrInvalidCommand, "Get does not use Value"},
		{"delete with limit", Command{Op: OpDelete, Key: k, Limit: 1}, ErrInvalidCommand, "Limit"},
		{"put with prefix", Command{Op: OpPut, Key: k, Prefix: true}, ErrInvalidCommand, "Prefix"},
		{"put with expect", Command{Op: OpPut, Key: k, Expect: k}, ErrInvalidCommand, "Put does not use Expect"},
		{"append with absent", Command{Op: OpAppend, Key: k, ExpectAbsent: true}, ErrInvalidCommand, "ExpectAbsent"},
		{"prefix with end", Command{Op: OpRange, Key: k, End: k, Prefix: true}, ErrInvalidCommand, "End must be empty"},
		{"negative limit", Command{Op: OpRange, Limit: -1}, ErrInvalidCommand, "Limit is -1"},
		{"limit too large", Command{Op: OpRange, Limit: MaxRangeLimit + 1}, ErrInvalidCommand, "MaxRangeLimit"},
		{"cas two modes", Command{Op: OpCAS, Key: k, ExpectByVersion: true, ExpectAbsent: true}, ErrInvalidCommand, "exclusive"},
		{"cas stray version", Command{Op: OpCAS, Key: k, ExpectVersion: 3}, ErrInvalidCommand, "ExpectVersion is set"},
		{"cas expect and absent", Command{Op: OpCAS, Key: k, Expect: k, ExpectAbsent: true}, ErrInvalidCommand, "Expect is set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Validate() = %v, want an error wrapping %q and naming %q", err, tt.want, tt.field)
			}
			if _, encErr := EncodeCommand(tt.c); encErr == nil || encErr.Error() != err.Error() {
				t.Fatalf("EncodeCommand error %v, want %v", encErr, err)
			}
		})
	}
}

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range []Command{
		{Op: OpGet, Key: []byte("a")},
		{Op: OpPut, Key: []byte("a"), Value: []byte("hello")},
		{Op: OpPut, Key: []byte{0, 0xff}, Value: bytes.Repeat([]byte{7}, MaxValueBytes)},
		{Op: OpDelete, Key: []byte("a")},
		{Op: OpAppend, Key: []byte("a"), Value: []byte("!")},
		{Op: OpCAS, Key: []byte("a"), Value: []byte("new"), Expect: []byte("old")},
		{Op: OpCAS, Key: []byte("a"), Value: []byte("new"), ExpectByVersion: true, ExpectVersion: 1 << 63},
		{Op: OpCAS, Key: []byte("a"), ExpectAbsent: true},
		{Op: OpRange, Key: []byte("a"), End: []byte("b"), Limit: 10},
		{Op: OpRange, Key: []byte("p/"), Prefix: true},
	} {
		b, err := EncodeCommand(c)
		if err != nil {
			t.Fatalf("EncodeCommand(%v): %v", c.Op, err)
		}
		if len(b) > MaxCommandBytes {
			t.Errorf("%v encodes to %d bytes, over MaxCommandBytes", c.Op, len(b))
		}
		got, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("DecodeCommand(EncodeCommand(%v)): %v", c.Op, err)
		}
		if d := cmp.Diff(c, got, equateEmpty); d != "" {
			t.Errorf("%v round trip (-want +got):\n%s", c.Op, d)
		}
	}
}

func TestDecodeCommandMalformed(t *testing.T) {
	good, _ := EncodeCommand(Command{Op: OpPut, Key: []byte("key"), Value: []byte("value")})
	tests := []struct {
		name string
		b    []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrMalformed, "format"},
		{"format", append([]byte{2}, good[1:]...), ErrMalformed, "format 2"},
		{"flags", append([]byte{1, byte(OpPut), 0x80}, good[3:]...), ErrMalformed, "flags"},
		{"truncated", good[:len(good)-3], ErrMalformed, ""},
		{"trailing", append(append([]byte{}, good...), 0), ErrMalformed, "trailing"},
		{"huge key length", []byte{1, byte(OpGet), 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, ErrKeyTooLarge, "Key is 4294967295 bytes"},
		{"key past end", []byte{1, byte(OpGet), 0, 10, 'a'}, ErrMalformed, "Key is 10 bytes but only 1 remain"},
		{"bad varint", []byte{1, byte(OpGet), 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrMalformed, "varint in Key length"},
		{"over-long varint", []byte{1, byte(OpGet), 0, 0x81, 0x00, 'a', 0, 0, 0, 0, 0}, ErrMalformed, "over-long varint in Key length"},
		{"limit", []byte{1, byte(OpRange), 0, 0, 0, 0, 0, 0xe9, 0x07, 0}, ErrInvalidCommand, "Limit is 1001"},
		{"invalid", []byte{1, byte(OpGet), 0, 0, 0, 0, 0, 0, 0}, ErrInvalidCommand, "Key is empty"},
		{"oversize", make([]byte, MaxCommandBytes+1), ErrMalformed, "MaxCommandBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeCommand(tt.b)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("DecodeCommand() = %v, want an error wrapping %q containing %q", err, tt.want, tt.msg)
			}
		})
	}
}

func TestResultRoundTrip(t *testing.T) {
	for _, r := range []Result{
		{},
		{Found: true, Value: []byte("v"), Version: 7},
		{Found: true, Swapped: true, Version: 1 << 40},
		{KVs: []KeyValue{{Key: []byte("a"), Value: []byte("1"), Version: 1}, {Key: []byte("b"), Version: 2}}, More: true},
		{Err: "kv: key too large: Key is 5000 bytes; the limit is 4096"},
	} {
		got, err := DecodeResult(EncodeResult(r))
		if err != nil {
			t.Fatalf("DecodeResult(EncodeResult(%+v)): %v", r, err)
		}
		if d := cmp.Diff(r, got, equateEmpty); d != "" {
			t.Errorf("round trip (-want +got):\n%s", d)
		}
	}
	long := Result{Err: strings.Repeat("e", MaxErrBytes+5)}
	got, err := DecodeResult(EncodeResult(long))
	if err != nil || len(got.Err) != MaxErrBytes {
		t.Errorf("long Err: decoded %d bytes, err %v; want truncated to %d", len(got.Err), err, MaxErrBytes)
	}
}

func TestDecodeResultMalformed(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":       nil,
		"format":      {9, 0, 0, 0, 0, 0},
		"flags":       {1, 0x40, 0, 0, 0, 0},
		"count lie":   {1, 0, 0, 0, 0, 100, 0, 0, 0},
		"count limit": append([]byte{1, 0, 0, 0, 0, 0xe9, 0x07}, make([]byte, 4000)...),
		"trailing":    {1, 0, 0, 0, 0, 0, 0},
		"oversize":    make([]byte, MaxResultBytes+1),
	} {
		if _, err := DecodeResult(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: DecodeResult() = %v, want ErrMalformed", name, err)
		}
	}
}

func TestAsError(t *testing.T) {
	if err := (Result{}).AsError(); err != nil {
		t.Errorf("AsError of success = %v", err)
	}
	_, cause := DecodeCommand([]byte{1, byte(OpGet), 0, 0xff, 0x7f})
	err := Result{Err: cause.Error()}.AsError()
	if !errors.Is(err, ErrKeyTooLarge) || err.Error() != cause.Error() {
		t.Errorf("AsError = %v, want %v matching ErrKeyTooLarge", err, cause)
	}
	if err := (Result{Err: "other"}).AsError(); err == nil || errors.Is(err, ErrMalformed) {
		t.Errorf("AsError(other) = %v", err)
	}
}

func TestOpString(t *testing.T) {
	if got := OpCAS.String(); got != "CAS" {
		t.Errorf("OpCAS.String() = %q", got)
	}
	if got := Op(42).String(); got != "Op(42)" {
		t.Errorf("Op(42).String() = %q", got)
	}
}
