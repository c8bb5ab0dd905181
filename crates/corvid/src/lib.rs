//! corvid library
