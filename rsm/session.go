package rsm

// session is one client's entry in the dedup table.
type session struct {
	// client is the session's ClientID; never 0.
	client uint64
	// seq is the Seq of the last command the session applied.
	seq uint64
	// result is the encoded result (status OK) of that command, returned
	// again for a retry. Owned by the table; never handed out.
	result []byte
	// lastActive is the Machine's clock (Unix ms, >= 0) at the session's
	// last command of any kind (applied, retry or stale).
	lastActive int64
	// lastIndex is the log index of that command; unique among sessions,
	// and it orders the LRU list.
	lastIndex uint64
	// prev and next link the LRU list (least recently used first).
	prev, next *session
}

// table is the dedup table: sessions by client, and the same sessions in
// a list ordered by lastIndex, least recently used first. Because the
// clock never goes back, lastActive is non-decreasing along the list too,
// so the idle sessions are always a prefix of it.
type table struct {
	byClient map[uint64]*session
	// head is the least recently used session, tail the most; both nil
	// when the table is empty.
	head, tail *session
}

func newTable() *table {
	return &table{byClient: make(map[uint64]*session)}
}

// len returns the number of sessions.
func (t *table) len() int { return len(t.byClient) }

// get returns the client's session, or nil.
func (t *table) get(client uint64) *session { return t.byClient[client] }

// push adds s (not in the table) as the most recently used session.
func (t *table) push(s *session) {
	t.byClient[s.client] = s
	t.linkTail(s)
}

// touch records a command of s at index and clock now, making s the most
// recently used session.
func (t *table) touch(s *session, index uint64, now int64) {
	s.lastIndex, s.lastActive = index, now
	if t.tail == s {
		return
	}
	t.unlink(s)
	t.linkTail(s)
}

// remove drops s from the table.
func (t *table) remove(s *session) {
	delete(t.byClient, s.client)
	t.unlink(s)
}

// oldest returns the least recently used session, or nil.
func (t *table) oldest() *session { return t.head }

func (t *table) linkTail(s *session) {
	s.prev, s.next = t.tail, nil
	if t.tail != nil {
		t.tail.next = s
	} else {
		t.head = s
	}
	t.tail = s
}

func (t *table) unlink(s *session) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		t.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		t.tail = s.prev
	}
	s.prev, s.next = nil, nil
}
