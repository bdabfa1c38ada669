package rsm

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
)

// Snapshot image layout constants.
const (
	snapMagic  = "FRSM"
	snapFormat = 1
	// snapHeader is magic, format, clock (8) and session count (8).
	snapHeader = len(snapMagic) + 1 + 8 + 8
	// snapSession is the fixed part of one session record: client, seq,
	// lastActive, lastIndex (8 each) and the result length (4).
	snapSession = 8 + 8 + 8 + 8 + 4
	// snapTrailer is the App image length (8) and the CRC32C (4).
	snapTrailer = 8 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot returns an image of the dedup table and the App:
//
//	"FRSM" format(1)=1 clock(8) count(8)
//	(client(8) seq(8) lastActive(8) lastIndex(8) len(4) result)*
//	len(8) app-image crc32c(4)
//
// with integers little-endian, sessions in ascending client order, and the
// CRC32C covering everything before it. The same state always gives the
// same bytes. An error from the App's Snapshot is returned wrapped.
func (m *Machine) Snapshot() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	app, err := m.app.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("rsm: snapshot of the application: %w", err)
	}
	ss := make([]*session, 0, m.sessions.len())
	size := snapHeader + snapTrailer + len(app)
	for s := m.sessions.oldest(); s != nil; s = s.next {
		ss = append(ss, s)
		size += snapSession + len(s.result)
	}
	slices.SortFunc(ss, func(a, b *session) int { return cmp.Compare(a.client, b.client) })
	b := make([]byte, 0, size)
	b = append(b, snapMagic...)
	b = append(b, snapFormat)
	b = binary.LittleEndian.AppendUint64(b, uint64(m.clock))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(ss)))
	for _, s := range ss {
		b = binary.LittleEndian.AppendUint64(b, s.client)
		b = binary.LittleEndian.AppendUint64(b, s.seq)
		b = binary.LittleEndian.AppendUint64(b, uint64(s.lastActive))
		b = binary.LittleEndian.AppendUint64(b, s.lastIndex)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s.result)))
		b = append(b, s.result...)
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(len(app)))
	b = append(b, app...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// Restore replaces the dedup table, the clock and the App's state with
// those of a Snapshot image. It checks the checksum and every field first
// (client IDs non-zero and strictly ascending, lastActive between 0 and
// the clock, lastIndex non-zero and unique, lastActive non-decreasing in
// lastIndex order, results well formed, lengths exact), then restores the
// App. On any failure it returns an error (wrapping ErrCorruptSnapshot, or
// the App's error) and the Machine is unchanged. data is not retained.
//
// Restored sessions are not expired until the next command, and a table
// larger than this Machine's MaxSessions shrinks when the next session is
// opened; replicas are expected to share Options.
func (m *Machine) Restore(data []byte) error {
	clock, t, app, err := decodeSnapshot(data)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.app.Restore(app); err != nil {
		return fmt.Errorf("rsm: restore of the application: %w", err)
	}
	m.clock, m.sessions = clock, t
	return nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorruptSnapshot}, args...)...)
}

// decodeSnapshot parses and checks an image. The returned app image
// aliases data; the table copies everything it keeps.
func decodeSnapshot(data []byte) (clock int64, t *table, app []byte, err error) {
	if len(data) < snapHeader+snapTrailer {
		return 0, nil, nil, corrupt("%d bytes, shorter than the smallest image (%d)", len(data), snapHeader+snapTrailer)
	}
	body := data[:len(data)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(data[len(body):]); got != want {
		return 0, nil, nil, corrupt("checksum %08x, want %08x", got, want)
	}
	if string(body[:4]) != snapMagic || body[4] != snapFormat {
		return 0, nil, nil, corrupt("unknown magic %q or format %d", body[:4], body[4])
	}
	clock = int64(binary.LittleEndian.Uint64(body[5:13]))
	if clock < 0 {
		return 0, nil, nil, corrupt("negative clock %d", clock)
	}
	count := binary.LittleEndian.Uint64(body[13:21])
	r := body[snapHeader:]
	if most := uint64(len(r)-8) / snapSession; count > most {
		return 0, nil, nil, corrupt("%d sessions cannot fit in %d bytes", count, len(r))
	}
	ss := make([]*session, 0, count)
	for i := uint64(0); i < count; i++ {
		s, rest, err := decodeSession(r, clock)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("%w (session record %d)", err, i)
		}
		if i > 0 && s.client <= ss[i-1].client {
			return 0, nil, nil, corrupt("session %d: client %d not after client %d", i, s.client, ss[i-1].client)
		}
		ss, r = append(ss, s), rest
	}
	if len(r) < 8 {
		return 0, nil, nil, corrupt("truncated before the application image")
	}
	if n := binary.LittleEndian.Uint64(r); n != uint64(len(r)-8) {
		return 0, nil, nil, corrupt("application image of %d bytes but %d bytes remain", n, len(r)-8)
	}
	t, err = buildTable(ss)
	if err != nil {
		return 0, nil, nil, err
	}
	return clock, t, r[8:], nil
}

// decodeSession parses one session record from the front of r, copying
// its result.
func decodeSession(r []byte, clock int64) (*session, []byte, error) {
	if len(r) < snapSession {
		return nil, nil, corrupt("truncated session record")
	}
	s := &session{
		client:     binary.LittleEndian.Uint64(r[0:8]),
		seq:        binary.LittleEndian.Uint64(r[8:16]),
		lastActive: int64(binary.LittleEndian.Uint64(r[16:24])),
		lastIndex:  binary.LittleEndian.Uint64(r[24:32]),
	}
	n := uint64(binary.LittleEndian.Uint32(r[32:36]))
	r = r[snapSession:]
	switch {
	case s.client == 0:
		return nil, nil, corrupt("client 0 has no session")
	case s.lastActive < 0 || s.lastActive > clock:
		return nil, nil, corrupt("last active %d outside [0, clock %d]", s.lastActive, clock)
	case s.lastIndex == 0:
		return nil, nil, corrupt("last index 0")
	case n > uint64(len(r)):
		return nil, nil, corrupt("result of %d bytes but %d bytes remain", n, len(r))
	case n == 0 || r[0] != statusOK:
		return nil, nil, corrupt("remembered result is not a success result")
	}
	s.result = append([]byte(nil), r[:n]...)
	return s, r[n:], nil
}

// buildTable links sessions into a table in lastIndex order, checking
// that indices are unique and lastActive never decreases along it.
func buildTable(ss []*session) (*table, error) {
	byIndex := slices.Clone(ss)
	slices.SortFunc(byIndex, func(a, b *session) int { return cmp.Compare(a.lastIndex, b.lastIndex) })
	t := newTable()
	for i, s := range byIndex {
		if i > 0 {
			p := byIndex[i-1]
			if p.lastIndex == s.lastIndex {
				return nil, corrupt("clients %d and %d share last index %d", p.client, s.client, s.lastIndex)
			}
			if p.lastActive > s.lastActive {
				return nil, corrupt("client %d active at %d after client %d active at %d, but its last index %d is earlier",
					p.client, p.lastActive, s.client, s.lastActive, p.lastIndex)
			}
		}
		t.push(s)
	}
	return t, nil
}
