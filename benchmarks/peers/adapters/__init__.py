"""One adapter per system under test; `base.Adapter` is the interface they share."""
