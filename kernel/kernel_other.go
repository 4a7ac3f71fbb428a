//go:build !linux

package kernel

// NS is a network namespace; on this operating system none can be made.
type NS struct{}

// NewNS returns ErrNotSupported: network namespaces are Linux only.
func NewNS(name string) (*NS, error) { return nil, ErrNotSupported }

// GetNS returns ErrNotSupported: network namespaces are Linux only.
func GetNS(name string) (*NS, error) { return nil, ErrNotSupported }

// Do returns ErrNotSupported.
func (ns *NS) Do(f func() error) error { return ErrNotSupported }

// Close does nothing.
func (ns *NS) Close() error { return nil }

// Delete returns ErrNotSupported.
func (ns *NS) Delete() error { return ErrNotSupported }

// DeleteNamedNS returns ErrNotSupported.
func DeleteNamedNS(name string) error { return ErrNotSupported }

// ListNamedNS returns ErrNotSupported.
func ListNamedNS(prefix string) ([]string, error) { return nil, ErrNotSupported }

// CurrentNS returns ErrNotSupported: network namespaces are Linux only.
func CurrentNS() (*NS, error) { return nil, ErrNotSupported }
