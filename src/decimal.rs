//! Exact sums of Cost Explorer's amount strings: decimal arithmetic on digits, never a float.

/// Digits per limb: each limb holds 0..10^9, least significant limb first.
const BASE: u64 = 1_000_000_000;
/// An amount longer than this is not something Cost Explorer sends.
const MAX_LEN: usize = 200;

/// A running exact sum. Positive and negative amounts are kept apart (magnitudes at a
/// common scale) and subtracted once, when the sum is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sum {
    /// Digits after the point: the most any added amount had.
    scale: usize,
    positive: Vec<u32>,
    negative: Vec<u32>,
}

impl Sum {
    /// Adds one amount such as `"12.294"`, `"-0.0000000001"` or `"7"`. Anything else (an
    /// exponent, a `+`, spaces, a lone `.`, an empty string) is an error naming the value.
    pub fn add(&mut self, amount: &str) -> Result<(), String> {
        let bad = || format!("not a decimal amount: {amount:?}");
        if amount.len() > MAX_LEN {
            return Err(bad());
        }
        let (negative, digits) = match amount.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, amount),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty()
            || !all_digits(int)
            || !all_digits(frac)
            || (digits.contains('.') && frac.is_empty())
        {
            return Err(bad());
        }
        if frac.len() > self.scale {
            let more = frac.len() - self.scale;
            scale_up(&mut self.positive, more);
            scale_up(&mut self.negative, more);
            self.scale = frac.len();
        }
        let mut text = String::with_capacity(int.len() + self.scale);
        text.push_str(int);
        text.push_str(frac);
        text.extend(std::iter::repeat_n('0', self.scale - frac.len()));
        let value = limbs(&text);
        add_to(
            if negative {
                &mut self.negative
            } else {
                &mut self.positive
            },
            &value,
        );
        Ok(())
    }

    /// The sum as a plain decimal string with the largest scale added (`"3.1100000000"`,
    /// `"-0.5"`, `"0"`): no exponent, no leading zeros, no `-0`.
    pub fn to_decimal(&self) -> String {
        let (sign, magnitude) = if less(&self.positive, &self.negative) {
            ("-", sub(&self.negative, &self.positive))
        } else {
            ("", sub(&self.positive, &self.negative))
        };
        let mut digits = to_digits(&magnitude);
        if digits.len() <= self.scale {
            let pad = self.scale + 1 - digits.len();
            digits.insert_str(0, &"0".repeat(pad));
        }
        let (int, frac) = digits.split_at(digits.len() - self.scale);
        let zero = digits.bytes().all(|b| b == b'0');
        let sign = if zero { "" } else { sign };
        if frac.is_empty() {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        }
    }
}

/// Decimal digits (most significant first) → limbs.
fn limbs(text: &str) -> Vec<u32> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 9 + 1);
    let mut end = bytes.len();
    while end > 0 {
        let start = end.saturating_sub(9);
        let chunk = std::str::from_utf8(&bytes[start..end]).expect("ASCII digits");
        out.push(chunk.parse::<u32>().expect("at most 9 digits"));
        end = start;
    }
    trim(&mut out);
    out
}

fn to_digits(value: &[u32]) -> String {
    let Some((top, rest)) = value.split_last() else {
        return "0".into();
    };
    let mut s = top.to_string();
    for limb in rest.iter().rev() {
        s.push_str(&format!("{limb:09}"));
    }
    s
}

fn trim(value: &mut Vec<u32>) {
    while value.last() == Some(&0) {
        value.pop();
    }
}

fn scale_up(value: &mut Vec<u32>, mut digits: usize) {
    while digits > 0 {
        let step = digits.min(9);
        let factor = 10u64.pow(step as u32);
        let mut carry = 0u64;
        for limb in value.iter_mut() {
            let x = u64::from(*limb) * factor + carry;
            *limb = (x % BASE) as u32;
            carry = x / BASE;
        }
        if carry > 0 {
            value.push(carry as u32);
        }
        digits -= step;
    }
}

fn add_to(acc: &mut Vec<u32>, value: &[u32]) {
    if acc.len() < value.len() {
        acc.resize(value.len(), 0);
    }
    let mut carry = 0u64;
    for (i, limb) in acc.iter_mut().enumerate() {
        let x = u64::from(*limb) + u64::from(value.get(i).copied().unwrap_or(0)) + carry;
        *limb = (x % BASE) as u32;
        carry = x / BASE;
        if carry == 0 && i >= value.len() {
            break;
        }
    }
    if carry > 0 {
        acc.push(carry as u32);
    }
}

/// `a < b` for trimmed or untrimmed magnitudes.
fn less(a: &[u32], b: &[u32]) -> bool {
    let len = a.len().max(b.len());
    for i in (0..len).rev() {
        let (x, y) = (a.get(i).unwrap_or(&0), b.get(i).unwrap_or(&0));
        if x != y {
            return x < y;
        }
    }
    false
}

/// `a - b` where `a >= b`.
fn sub(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len());
    let mut borrow = 0i64;
    for (i, limb) in a.iter().enumerate() {
        let mut x = i64::from(*limb) - i64::from(b.get(i).copied().unwrap_or(0)) - borrow;
        borrow = 0;
        if x < 0 {
            x += BASE as i64;
            borrow = 1;
        }
        out.push(x as u32);
    }
    trim(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact sum of `amounts`.
    fn sum<'a>(amounts: impl IntoIterator<Item = &'a str>) -> Result<String, String> {
        let mut s = Sum::default();
        for a in amounts {
            s.add(a)?;
        }
        Ok(s.to_decimal())
    }

    #[test]
    fn ten_digit_fractions_add_up_exactly() {
        // 0.1 + 0.2 is the classic float failure; 10-digit fractions ten times over too.
        assert_eq!(sum(["0.1", "0.2"]).unwrap(), "0.3");
        let tenths = vec!["0.0000000001"; 10];
        assert_eq!(sum(tenths).unwrap(), "0.0000000010");
        assert_eq!(
            sum(["98765432109876543210.0123456789", "0.9876543211"]).unwrap(),
            "98765432109876543211.0000000000"
        );
    }

    #[test]
    fn carries_cross_limbs_and_the_point() {
        assert_eq!(
            sum(["999999999.999999999", "0.000000001"]).unwrap(),
            "1000000000.000000000"
        );
        assert_eq!(
            sum(["99999999999999999999", "1"]).unwrap(),
            "100000000000000000000"
        );
    }

    #[test]
    fn negatives_and_different_scales() {
        assert_eq!(sum(["12.294", "-12.5"]).unwrap(), "-0.206");
        assert_eq!(sum(["3.1000000000", "0.01"]).unwrap(), "3.1100000000");
        assert_eq!(
            sum(["-0.0000000001", "0.0000000001"]).unwrap(),
            "0.0000000000"
        );
        assert_eq!(sum(["-5", "-7", "2"]).unwrap(), "-10");
        assert_eq!(sum(["0.5", "-1000000000000"]).unwrap(), "-999999999999.5");
        assert_eq!(sum(["007", "0.010"]).unwrap(), "7.010");
        assert_eq!(sum([] as [&str; 0]).unwrap(), "0");
        assert_eq!(
            sum(crate::decimal::tests::TRICKY).unwrap(),
            "98765432109876543212.9163458022"
        );
    }

    /// The fake Cost Explorer's tricky amounts; the expected sum is Python's
    /// `sum(map(Decimal, TRICKY))` at precision 100.
    const TRICKY: [&str; 8] = [
        "12.294",
        "0.0000001234",
        "-12.5",
        "3.1000000000",
        "0",
        "98765432109876543210.0123456789",
        "0.01",
        "-0.0000000001",
    ];

    #[test]
    fn garbage_is_refused_by_value() {
        for bad in [
            "", "-", ".", "1.", ".5", "1e3", "+1", " 1", "1,5", "1.2.3", "NaN", "--1", "０",
        ] {
            let e = sum([bad]).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        assert!(sum([&"9".repeat(500) as &str]).is_err());
    }
}
