//! XTEST injection (being written).
