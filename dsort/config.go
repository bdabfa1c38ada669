package dsort

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Partition modes.
const (
	PartitionBits   = "bits"   // key ranges of equal width: the top bits with 2^N servers
	PartitionSample = "sample" // key ranges from a sample of every node's keys
)

// DefaultSampleSize is the default number of keys each node samples.
const DefaultSampleSize = 10000

// ErrConfig reports an invalid cluster configuration.
var ErrConfig = errors.New("dsort: bad config")

// Config is a cluster: the classic netsort YAML (a list of servers) plus
// optional fields for the partitioning. Every node must run the same
// Config; the handshake compares their hashes.
type Config struct {
	Servers []Server `yaml:"servers"`
	// Partition is PartitionBits (default) or PartitionSample.
	Partition string `yaml:"partition,omitempty"`
	// SampleSize is the number of keys each node samples (default
	// DefaultSampleSize, at most wire.MaxPayload/10).
	SampleSize int `yaml:"sampleSize,omitempty"`
}

// Server is one node: its ID (0..N-1, the order of the outputs) and the
// address it listens on.
type Server struct {
	ID   int    `yaml:"serverId"`
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
}

// Addr returns host:port.
func (s Server) Addr() string { return s.Host + ":" + strconv.Itoa(s.Port) }

// LoadConfig reads and checks a YAML config; unknown fields are errors.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("dsort: %w", err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
	}
	if err := c.Normalize(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Normalize sorts the servers by ID, fills in defaults and checks that IDs
// run 0..N-1 and ports are valid.
func (c *Config) Normalize() error {
	if len(c.Servers) == 0 {
		return fmt.Errorf("%w: no servers", ErrConfig)
	}
	if len(c.Servers) > 1<<12 {
		return fmt.Errorf("%w: %d servers, at most 4096", ErrConfig, len(c.Servers))
	}
	slices.SortFunc(c.Servers, func(a, b Server) int { return a.ID - b.ID })
	for i, s := range c.Servers {
		if s.ID != i {
			return fmt.Errorf("%w: server IDs must be 0..%d, each once (found %d at position %d)", ErrConfig, len(c.Servers)-1, s.ID, i)
		}
		if s.Port <= 0 || s.Port > 65535 || s.Host == "" {
			return fmt.Errorf("%w: server %d: bad address %q", ErrConfig, s.ID, s.Addr())
		}
	}
	switch c.Partition {
	case "":
		c.Partition = PartitionBits
	case PartitionBits, PartitionSample:
	default:
		return fmt.Errorf("%w: partition %q: want %q or %q", ErrConfig, c.Partition, PartitionBits, PartitionSample)
	}
	if c.SampleSize == 0 {
		c.SampleSize = DefaultSampleSize
	}
	if c.SampleSize < 0 || c.SampleSize > maxSample {
		return fmt.Errorf("%w: sampleSize %d: want 1..%d", ErrConfig, c.SampleSize, maxSample)
	}
	return nil
}

// Hash is the SHA-256 of the normalized config in a canonical text form;
// nodes whose hashes differ refuse each other at the handshake.
func (c Config) Hash() [32]byte {
	h := sha256.New()
	fmt.Fprintf(h, "dsort config v1\npartition %s\nsample %d\n", c.Partition, c.SampleSize)
	for _, s := range c.Servers {
		fmt.Fprintf(h, "server %d %s %d\n", s.ID, s.Host, s.Port)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}
