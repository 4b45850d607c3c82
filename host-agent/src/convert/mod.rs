//! Colour conversion (being written).
