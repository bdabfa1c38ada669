package transport

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/flotilla-dev/flotilla/raft"
)

// The binary encoding of one raft.Message. Integers are unsigned LEB128
// varints (encoding/binary's Uvarint) unless marked u8:
//
//	type u8 | flags u8 | from | to | term | logTerm | index | commit | rejectHint
//	nEntries | nEntries × (term | index | entryType u8 | len | len bytes of data)
//	if flags&flagSnapshot: meta.index | meta.term | nVoters | nVoters × voter
//	                       | len | len bytes of data
//	if flags&flagConfExt:  nOutgoing | outgoing voters | nLearners | learners
//	                       | autoLeave u8   (snapshot membership beyond voters)
//	if flags&flagContext:  context
//
// docs/transport.md draws the layout byte by byte.

// Message flag bits. Any other bit set is a decode error, so a later version
// can give them meaning without being misread by this one.
const (
	flagReject   = 1 << 0
	flagSnapshot = 1 << 1
	flagContext  = 1 << 2 // Context is non-zero and follows
	flagConfExt  = 1 << 3 // the snapshot's ConfState has more than voters
	knownFlags   = flagReject | flagSnapshot | flagContext | flagConfExt
)

// minEntryWire is the fewest bytes one encoded entry takes: one byte each for
// term, index, type and data length. The decoder refuses an entry count that
// the remaining bytes cannot hold, so a hostile count never allocates.
const minEntryWire = 4

// hasConfExt reports whether a snapshot's membership needs the extension
// (anything beyond a plain list of voters).
func hasConfExt(cs raft.ConfState) bool {
	return len(cs.VotersOutgoing) > 0 || len(cs.Learners) > 0 || cs.AutoLeave
}

// uvarintLen is the number of bytes binary.AppendUvarint uses for x.
func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// messageSize is the exact number of bytes appendMessage adds for m.
func messageSize(m *raft.Message) int {
	n := 2 + uvarintLen(m.From) + uvarintLen(m.To) + uvarintLen(m.Term) +
		uvarintLen(m.LogTerm) + uvarintLen(m.Index) + uvarintLen(m.Commit) +
		uvarintLen(m.RejectHint) + uvarintLen(uint64(len(m.Entries)))
	for i := range m.Entries {
		e := &m.Entries[i]
		n += uvarintLen(e.Term) + uvarintLen(e.Index) + 1 +
			uvarintLen(uint64(len(e.Data))) + len(e.Data)
	}
	if s := m.Snapshot; s != nil {
		n += uvarintLen(s.Meta.Index) + uvarintLen(s.Meta.Term) +
			uvarintLen(uint64(len(s.Meta.ConfState.Voters)))
		for _, v := range s.Meta.ConfState.Voters {
			n += uvarintLen(v)
		}
		n += uvarintLen(uint64(len(s.Data))) + len(s.Data)
		if cs := s.Meta.ConfState; hasConfExt(cs) {
			n += uvarintLen(uint64(len(cs.VotersOutgoing))) + uvarintLen(uint64(len(cs.Learners))) + 1
			for _, v := range cs.VotersOutgoing {
				n += uvarintLen(v)
			}
			for _, v := range cs.Learners {
				n += uvarintLen(v)
			}
		}
	}
	if m.Context != 0 {
		n += uvarintLen(m.Context)
	}
	return n
}

// appendMessage appends the encoding of m to dst and returns the result.
func appendMessage(dst []byte, m *raft.Message) []byte {
	var flags byte
	if m.Reject {
		flags |= flagReject
	}
	if m.Snapshot != nil {
		flags |= flagSnapshot
		if hasConfExt(m.Snapshot.Meta.ConfState) {
			flags |= flagConfExt
		}
	}
	if m.Context != 0 {
		flags |= flagContext
	}
	dst = append(dst, byte(m.Type), flags)
	for _, x := range [...]uint64{m.From, m.To, m.Term, m.LogTerm, m.Index, m.Commit, m.RejectHint} {
		dst = binary.AppendUvarint(dst, x)
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Entries)))
	for i := range m.Entries {
		e := &m.Entries[i]
		dst = binary.AppendUvarint(dst, e.Term)
		dst = binary.AppendUvarint(dst, e.Index)
		dst = append(dst, byte(e.Type))
		dst = binary.AppendUvarint(dst, uint64(len(e.Data)))
		dst = append(dst, e.Data...)
	}
	if s := m.Snapshot; s != nil {
		dst = binary.AppendUvarint(dst, s.Meta.Index)
		dst = binary.AppendUvarint(dst, s.Meta.Term)
		dst = binary.AppendUvarint(dst, uint64(len(s.Meta.ConfState.Voters)))
		for _, v := range s.Meta.ConfState.Voters {
			dst = binary.AppendUvarint(dst, v)
		}
		dst = binary.AppendUvarint(dst, uint64(len(s.Data)))
		dst = append(dst, s.Data...)
		if cs := s.Meta.ConfState; hasConfExt(cs) {
			for _, ids := range [][]uint64{cs.VotersOutgoing, cs.Learners} {
				dst = binary.AppendUvarint(dst, uint64(len(ids)))
				for _, v := range ids {
					dst = binary.AppendUvarint(dst, v)
				}
			}
			auto := byte(0)
			if cs.AutoLeave {
				auto = 1
			}
			dst = append(dst, auto)
		}
	}
	if m.Context != 0 {
		dst = binary.AppendUvarint(dst, m.Context)
	}
	return dst
}

// decoder reads the fields of one encoded message from b. The first error
// sticks; later reads return zero values.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d", ErrMalformed, fmt.Sprintf(format, args...), d.off)
	}
}

func (d *decoder) remaining() int { return len(d.b) - d.off }

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.remaining() < 1 {
		d.fail("truncated %s", what)
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b[d.off:])
	switch {
	case n == 0:
		d.fail("truncated %s", what)
	case n < 0:
		d.fail("%s overflows 64 bits", what)
	default:
		d.off += n
	}
	return x
}

// count reads a length or element count and checks that the remaining input
// can hold that many elements of at least minSize bytes each.
func (d *decoder) count(what string, minSize int) int {
	n := d.uvarint(what)
	if d.err != nil {
		return 0
	}
	if n > uint64(d.remaining()/minSize) {
		d.fail("%s %d exceeds the %d bytes left", what, n, d.remaining())
		return 0
	}
	return int(n)
}

// bytes returns the next n bytes as a sub-slice of the input whose capacity
// ends at its length, so appending to it cannot overwrite what follows. Zero
// bytes decode as nil.
func (d *decoder) bytes(n int) []byte {
	if d.err != nil || n == 0 {
		return nil
	}
	p := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return p
}

// decodeMessage decodes one message encoded by appendMessage. It reads the
// whole of b: trailing bytes are an error. The Data of the returned entries
// and snapshot alias b, which the caller must then leave unmodified.
// Every allocation is bounded by len(b): counts and lengths are checked
// against the bytes left before anything is allocated.
//
// Empty slices decode as nil, so decodeMessage(appendMessage(m)) equals m up
// to nil versus empty Entries, Data and Voters.
func decodeMessage(b []byte) (raft.Message, error) {
	d := decoder{b: b}
	var m raft.Message
	m.Type = raft.MessageType(d.byte("message type"))
	flags := d.byte("flags")
	if d.err == nil && m.Type == 0 {
		d.fail("message type 0")
	}
	if d.err == nil && flags&^knownFlags != 0 {
		d.fail("unknown flags %#x", flags&^knownFlags)
	}
	m.Reject = flags&flagReject != 0
	m.From = d.uvarint("from")
	m.To = d.uvarint("to")
	m.Term = d.uvarint("term")
	m.LogTerm = d.uvarint("log term")
	m.Index = d.uvarint("index")
	m.Commit = d.uvarint("commit")
	m.RejectHint = d.uvarint("reject hint")
	if n := d.count("entry count", minEntryWire); n > 0 {
		m.Entries = make([]raft.Entry, n)
		for i := range m.Entries {
			e := &m.Entries[i]
			e.Term = d.uvarint("entry term")
			e.Index = d.uvarint("entry index")
			e.Type = raft.EntryType(d.byte("entry type"))
			e.Data = d.bytes(d.count("entry data length", 1))
		}
	}
	if flags&flagSnapshot != 0 && d.err == nil {
		s := &raft.Snapshot{}
		s.Meta.Index = d.uvarint("snapshot index")
		s.Meta.Term = d.uvarint("snapshot term")
		if n := d.count("voter count", 1); n > 0 {
			s.Meta.ConfState.Voters = make([]uint64, n)
			for i := range s.Meta.ConfState.Voters {
				s.Meta.ConfState.Voters[i] = d.uvarint("voter")
			}
		}
		s.Data = d.bytes(d.count("snapshot data length", 1))
		if flags&flagConfExt != 0 {
			cs := &s.Meta.ConfState
			for _, l := range []*[]uint64{&cs.VotersOutgoing, &cs.Learners} {
				if n := d.count("member count", 1); n > 0 {
					*l = make([]uint64, n)
					for i := range *l {
						(*l)[i] = d.uvarint("member")
					}
				}
			}
			switch d.byte("auto-leave") {
			case 0:
			case 1:
				cs.AutoLeave = true
			default:
				d.fail("auto-leave byte is not 0 or 1")
			}
		}
		m.Snapshot = s
	} else if flags&flagConfExt != 0 {
		d.fail("membership flag without a snapshot")
	}
	if flags&flagContext != 0 {
		if m.Context = d.uvarint("context"); m.Context == 0 && d.err == nil {
			d.fail("context flag set with a zero context")
		}
	}
	if d.err == nil && d.remaining() != 0 {
		d.fail("%d trailing bytes", d.remaining())
	}
	if d.err != nil {
		return raft.Message{}, d.err
	}
	return m, nil
}
