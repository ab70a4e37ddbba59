//! Python's float semantics where they differ from Rust's: errors instead of inf/NaN, `**` through libm's
//! `pow`, `max` keeping its first argument unless the second is greater, and exact int / int division.
//!
//! The features must be bit-equal to the Python oracle (`tests/oracle/features.py`): each function here is the
//! CPython 3.11 operation it is named after (floatobject.c, mathmodule.c), calling the same libm.

use pyo3::exceptions::{PyOverflowError, PyValueError, PyZeroDivisionError};
use pyo3::PyResult;

extern "C" {
    fn pow(x: f64, y: f64) -> f64; // libm's, as CPython's float_pow calls it
}

/// `a / b` for floats: ZeroDivisionError when b is zero.
pub fn div(a: f64, b: f64) -> PyResult<f64> {
    if b == 0.0 {
        return Err(PyZeroDivisionError::new_err("float division by zero"));
    }
    Ok(a / b)
}

/// `x ** 2` for a float: libm's pow of |x| (LLVM would turn a visible 2.0 into x * x, which may round apart).
pub fn square(x: f64) -> PyResult<f64> {
    if !x.is_finite() {
        return Ok(if x.is_nan() { x } else { f64::INFINITY });
    }
    let a = x.abs();
    if a == 0.0 || a == 1.0 {
        return Ok(a);
    }
    // SAFETY: libm's pow is a pure function of two doubles.
    let r = unsafe { pow(a, std::hint::black_box(2.0)) };
    if r.is_infinite() {
        return Err(PyOverflowError::new_err("(34, 'Numerical result out of range')"));
    }
    Ok(r)
}

/// A one-argument `math` function: ValueError where it turns a number into NaN or a finite into inf.
fn math1(x: f64, f: fn(f64) -> f64) -> PyResult<f64> {
    let r = f(x);
    if (r.is_nan() && !x.is_nan()) || (r.is_infinite() && x.is_finite()) {
        return Err(PyValueError::new_err("math domain error"));
    }
    Ok(r)
}

pub fn log(x: f64) -> PyResult<f64> {
    math1(x, f64::ln)
}

pub fn sqrt(x: f64) -> PyResult<f64> {
    math1(x, f64::sqrt)
}

pub fn sin(x: f64) -> PyResult<f64> {
    math1(x, f64::sin)
}

pub fn cos(x: f64) -> PyResult<f64> {
    math1(x, f64::cos)
}

/// `max(a, b)`: b only when it is greater (a NaN `a` stays).
pub fn max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

/// `n / d` for ints (d > 0): the double nearest the exact quotient, as Python's int true division gives.
pub fn int_div(n: i128, d: u64) -> f64 {
    let (negative, magnitude) = (n < 0, n.unsigned_abs());
    const EXACT: u128 = 1 << 53;
    let q = if magnitude <= EXACT && u128::from(d) <= EXACT {
        magnitude as f64 / d as f64 // both exact as doubles: one correctly rounded division
    } else {
        // 2^40 n / d has over 54 bits here: its low bit can carry the remainder (sticky) into the rounding
        let scaled = magnitude << 40;
        let (quotient, remainder) = (scaled / u128::from(d), scaled % u128::from(d));
        (quotient | u128::from(remainder != 0)) as f64 / (1u64 << 40) as f64
    };
    if negative {
        -q
    } else {
        q
    }
}

/// `ts < threshold` for an int and a float: exact, as Python compares them (no rounding of the int).
pub fn int_lt_float(ts: i64, threshold: f64) -> bool {
    if threshold.is_nan() {
        return false;
    }
    let ceiling = threshold.ceil();
    if ceiling > i64::MAX as f64 {
        return true;
    }
    ceiling >= i64::MIN as f64 && i128::from(ts) < ceiling as i128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_division_rounds_the_exact_quotient() {
        assert_eq!(int_div(1_500_000_000, 1_000_000_000), 1.5);
        assert_eq!(int_div(-3, 2), -1.5);
        // 2^60 + 1 ns: the float of the int is 2^60, the quotient is not 2^60 / 1e9 rounded twice
        let n = (1i128 << 60) + 1;
        let exact = n as f64 / 1e9;
        assert!((int_div(n, 1_000_000_000) - exact).abs() <= exact * f64::EPSILON);
        assert_eq!(int_div(i128::from(i64::MAX) * 2, 1_000_000_000), 18446744073.709553);
    }

    #[test]
    fn int_float_comparison_is_exact() {
        let big = 1_723_161_255_000_000_001i64; // not a double: 1_723_161_255_000_000_000 is the nearest
        assert!(!int_lt_float(big, big as f64));
        assert!(int_lt_float(big - 2, big as f64));
        assert!(int_lt_float(5, f64::INFINITY) && !int_lt_float(5, f64::NAN) && !int_lt_float(5, -f64::INFINITY));
        assert!(int_lt_float(1, 1.5) && !int_lt_float(2, 1.5));
    }

    #[test]
    fn python_errors_where_python_raises() {
        assert!(div(1.0, 0.0).is_err() && log(0.0).is_err() && log(-1.0).is_err() && square(1e200).is_err());
        assert!(log(f64::NAN).unwrap().is_nan() && square(f64::NEG_INFINITY).unwrap() == f64::INFINITY);
        assert_eq!(square(-3.0).unwrap(), 9.0);
        assert!(max(f64::NAN, 0.0).is_nan() && max(-0.0, 0.0).is_sign_negative());
    }
}
