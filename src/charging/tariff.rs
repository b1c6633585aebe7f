//! Time-of-use tariffs and the bill of a charging session (003 §8.2 获取计费规则, §5.2 获取订单详情).

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::clock::BEIJING;

/// The five time-of-use tiers, 003 §8.2 `timeType`: 1 尖峰, 2 峰时, 3 平时, 4 谷时, 5 深谷.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Tier {
    /// 尖峰, `timeType` 1.
    Sharp,
    /// 峰时, `timeType` 2.
    Peak,
    /// 平时, `timeType` 3.
    Flat,
    /// 谷时, `timeType` 4.
    Valley,
    /// 深谷, `timeType` 5.
    DeepValley,
}

impl Tier {
    /// Every tier, in `timeType` order (so `ALL[i].time_type() == i + 1`).
    pub const ALL: [Tier; 5] = [Tier::Sharp, Tier::Peak, Tier::Flat, Tier::Valley, Tier::DeepValley];

    /// The document's `timeType`, 1..=5.
    pub fn time_type(self) -> i32 {
        self as i32 + 1
    }

    /// The tier of a `timeType`; `None` outside 1..=5.
    pub fn from_time_type(v: i32) -> Option<Tier> {
        match v {
            1 => Some(Tier::Sharp),
            2 => Some(Tier::Peak),
            3 => Some(Tier::Flat),
            4 => Some(Tier::Valley),
            5 => Some(Tier::DeepValley),
            _ => None,
        }
    }

    /// Position in `Bill::lines` and in the per-tier arrays below.
    fn index(self) -> usize {
        self as usize
    }

    /// The document's own word, for error messages an operator reads.
    fn name(self) -> &'static str {
        match self {
            Tier::Sharp => "尖峰",
            Tier::Peak => "峰时",
            Tier::Flat => "平时",
            Tier::Valley => "谷时",
            Tier::DeepValley => "深谷",
        }
    }
}

/// Minutes in a day: the largest `end_min` ("24:00").
const DAY_MIN: u16 = 1440;
/// ms in a day.
const DAY_MS: i128 = 86_400_000;
/// ms in a minute.
const MINUTE_MS: i128 = 60_000;
/// Energy shares are kept in µWh between the proportional split and the final allocation to whole Wh.
const MICRO: u128 = 1_000_000;

/// One time-of-use slot of a rule: Beijing minutes of the day, half-open `[start_min, end_min)`,
/// `0 <= start_min < end_min <= 1440`, charged at `rate` yuan/kWh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// The slot's tier (`timeType`).
    pub tier: Tier,
    /// First Beijing minute of the day in the slot (`startTime`), 0..1440.
    pub start_min: u16,
    /// First Beijing minute of the day after the slot (`endTime`), 1..=1440 (1440 is "24:00").
    pub end_min: u16,
    /// Electricity price, yuan/kWh (`rate`).
    pub rate: Decimal,
}

impl Slot {
    /// `startTime` as the document writes it: "08:00".
    pub fn hhmm_start(&self) -> String {
        hhmm(self.start_min)
    }

    /// `endTime` as the document writes it: "10:00"; a slot running to midnight ends at "24:00".
    pub fn hhmm_end(&self) -> String {
        hhmm(self.end_min)
    }
}

/// `峰时 10:00–11:00 @ 1.05 yuan/kWh`: how errors and logs name a slot.
impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}–{} @ {} yuan/kWh", self.tier.name(), self.hhmm_start(), self.hhmm_end(), self.rate)
    }
}

/// Beijing minutes of the day as "HH:MM" (1440 → "24:00").
fn hhmm(min: u16) -> String {
    format!("{:02}:{:02}", min / 60, min % 60)
}

/// `hhmm` for error messages, which see fields by reference.
fn hhmm_of(min: &u16) -> String {
    hhmm(*min)
}

/// "HH:MM" (exactly two digits each, 00:00..=24:00, minutes 00-59) → Beijing minutes of the day;
/// `None` when malformed ("7:5", "24:01", "25:00", "12:60").
pub fn parse_hhmm(s: &str) -> Option<u16> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' {
        return None;
    }
    let digit = |c: u8| c.is_ascii_digit().then(|| u16::from(c - b'0'));
    let hours = digit(b[0])? * 10 + digit(b[1])?;
    let minutes = digit(b[3])? * 10 + digit(b[4])?;
    // 24:00 is the only valid time in hour 24: it is the end of the day, not a minute inside it.
    if minutes > 59 || hours > 24 || (hours == 24 && minutes != 0) {
        return None;
    }
    Some(hours * 60 + minutes)
}

/// Why a set of slots and a service fee is not a tariff. Every message names the offending slot.
#[derive(Debug, thiserror::Error)]
pub enum TariffError {
    /// No slot at all: nothing covers the day.
    #[error("a tariff needs at least one slot covering 00:00–24:00")]
    NoSlots,
    /// A slot that is empty (start not before end) or reaches past 24:00.
    #[error("slot {0}: start must be before end, both within 00:00–24:00")]
    EmptySlot(Slot),
    /// A slot with a price below zero.
    #[error("slot {0}: negative rate")]
    NegativeRate(Slot),
    /// Two slots of one tier with different prices: a bill has one line, hence one rate, per tier.
    #[error("slot {second} and slot {first} are the same tier at different rates")]
    TierRates {
        /// The earlier slot of the tier.
        first: Slot,
        /// The later slot, whose rate differs.
        second: Slot,
    },
    /// A stretch of the day no slot covers.
    #[error("no slot covers {}–{} (next to slot {slot})", hhmm_of(.start_min), hhmm_of(.end_min))]
    Gap {
        /// First uncovered Beijing minute.
        start_min: u16,
        /// First covered Beijing minute after the gap (1440 at the end of the day).
        end_min: u16,
        /// The slot right after the gap, or the last slot when the gap runs to 24:00.
        slot: Slot,
    },
    /// Two slots sharing some minutes.
    #[error("slot {second} overlaps slot {first}")]
    Overlap {
        /// The slot starting first.
        first: Slot,
        /// The slot starting inside `first`.
        second: Slot,
    },
    /// A service fee percentage outside 0..=100.
    #[error("service fee percent {0} is outside 0..=100")]
    FeePercent(Decimal),
}

/// A billing rule's tariff: slots sorted by start that cover the Beijing day exactly once, one rate
/// per tier, and the service fee percentage (15 means 15 %). Only `Tariff::new` (and deserializing,
/// which goes through it) makes one, so these invariants always hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedTariff")]
pub struct Tariff {
    slots: Vec<Slot>,
    service_fee_percent: Decimal,
}

/// A stored tariff before validation: deserializing must not bypass `Tariff::new`.
#[derive(Deserialize)]
struct UncheckedTariff {
    slots: Vec<Slot>,
    service_fee_percent: Decimal,
}

impl TryFrom<UncheckedTariff> for Tariff {
    type Error = TariffError;

    fn try_from(raw: UncheckedTariff) -> Result<Tariff, TariffError> {
        Tariff::new(raw.slots, raw.service_fee_percent)
    }
}

impl Tariff {
    /// A tariff from slots in any order (rates yuan/kWh) and a service fee percentage (0..=100).
    /// Sorts the slots; refuses empty, out-of-day or negative-rate slots, gaps, overlaps, a tier at two rates.
    pub fn new(mut slots: Vec<Slot>, service_fee_percent: Decimal) -> Result<Tariff, TariffError> {
        for slot in &slots {
            if slot.start_min >= slot.end_min || slot.end_min > DAY_MIN {
                return Err(TariffError::EmptySlot(slot.clone()));
            }
            if slot.rate < Decimal::ZERO {
                return Err(TariffError::NegativeRate(slot.clone()));
            }
        }
        if service_fee_percent < Decimal::ZERO || service_fee_percent > Decimal::ONE_HUNDRED {
            return Err(TariffError::FeePercent(service_fee_percent));
        }
        slots.sort_by_key(|s| (s.start_min, s.end_min));
        let (Some(first), Some(last)) = (slots.first(), slots.last()) else {
            return Err(TariffError::NoSlots);
        };
        if first.start_min > 0 {
            return Err(TariffError::Gap { start_min: 0, end_min: first.start_min, slot: first.clone() });
        }
        if last.end_min < DAY_MIN {
            return Err(TariffError::Gap { start_min: last.end_min, end_min: DAY_MIN, slot: last.clone() });
        }
        // Sorted by start, the slots tile the day exactly when each one ends where the next begins, so
        // checking neighbours is enough (any overlap shows up between two neighbours).
        for pair in slots.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if b.start_min < a.end_min {
                return Err(TariffError::Overlap { first: a.clone(), second: b.clone() });
            }
            if b.start_min > a.end_min {
                return Err(TariffError::Gap { start_min: a.end_min, end_min: b.start_min, slot: b.clone() });
            }
        }
        for (i, later) in slots.iter().enumerate() {
            if let Some(earlier) = slots[..i].iter().find(|s| s.tier == later.tier && s.rate != later.rate) {
                return Err(TariffError::TierRates { first: earlier.clone(), second: later.clone() });
            }
        }
        Ok(Tariff { slots, service_fee_percent })
    }

    /// The default rule: `rate` yuan/kWh all day (one 平 slot 00:00–24:00), service fee percent 0..=100.
    pub fn flat(rate: Decimal, service_fee_percent: Decimal) -> Result<Tariff, TariffError> {
        Tariff::new(vec![Slot { tier: Tier::Flat, start_min: 0, end_min: DAY_MIN, rate }], service_fee_percent)
    }

    /// The slots, sorted by start, covering 00:00–24:00 Beijing exactly once.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The service fee, percent of the electricity amount (15 means 15 %).
    pub fn service_fee_percent(&self) -> Decimal {
        self.service_fee_percent
    }

    /// The slot containing the Beijing instant `at_ms` (ms since the Unix epoch).
    pub fn slot_at(&self, at_ms: i64) -> &Slot {
        let minute = u16::try_from(beijing_day_ms(at_ms) / MINUTE_MS).unwrap_or(0);
        // The first slot starts at 00:00 (validated), so at least one slot starts at or before `minute`
        // and the index is in range; `slots` is never empty.
        let after = self.slots.partition_point(|s| s.start_min <= minute);
        &self.slots[after.saturating_sub(1)]
    }

    /// The rate (yuan/kWh) of a tier; `None` when no slot has that tier (then it never gets energy).
    fn rate(&self, tier: Tier) -> Option<Decimal> {
        self.slots.iter().find(|s| s.tier == tier).map(|s| s.rate)
    }

    /// What the energy of `samples` (meter readings in time order) costs if the session ended at the
    /// last one: energy split across tiers by the Beijing time it was delivered, each tier's line
    /// rounded half-up to the fen, plus the service fee. Fewer than two samples bill nothing.
    ///
    /// Between two readings the power is taken as constant, so an interval is split in proportion to the
    /// time it spends in each slot. Readings are treated as a running maximum: a reading below an earlier
    /// one (a meter glitch) delivers nothing, and the energy is not counted a second time when the meter
    /// climbs back; the billed energy is the highest reading minus the first (= last − first for a meter
    /// that never goes back). Negative readings count as 0 Wh. Two readings at the same instant (or out of
    /// order) put their energy in the slot of the later reading's instant.
    pub fn bill(&self, samples: &[Sample]) -> Bill {
        let mut micro = [0u128; 5];
        let Some(first) = samples.first() else {
            return Bill::from_lines([Line::default(); 5], Decimal::ZERO);
        };
        let start = first.energy_wh.max(0);
        let mut high = start;
        for pair in samples.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let reading = b.energy_wh.max(0);
            if reading <= high {
                continue;
            }
            // Both are >= 0, so this cannot overflow and is at most i64::MAX.
            let delta = (reading - high).unsigned_abs();
            high = reading;
            self.spread(a.at_ms, b.at_ms, u128::from(delta), &mut micro);
        }
        // Every interval added exactly `delta × MICRO` µWh, so the µWh add up to `total × MICRO` and the
        // shortfall of the floors below is the sum of fractions < 1 each: at most 4.
        let total = u128::from((high - start).unsigned_abs());
        let mut whole = micro.map(|m| m / MICRO);
        let remainders = micro.map(|m| m % MICRO);
        let shortfall = total.saturating_sub(whole.iter().sum());
        largest_remainder(&mut whole, &remainders, shortfall);
        let lines = std::array::from_fn(|i| {
            // Each tier's share is at most `total`, which came from an i64: the fallback never applies.
            let energy_wh = i64::try_from(whole[i]).unwrap_or(i64::MAX);
            let rate = self.rate(Tier::ALL[i]).unwrap_or_default();
            Line { energy_wh, amount_fen: if energy_wh == 0 { 0 } else { line_amount_fen(energy_wh, rate) } }
        });
        Bill::from_lines(lines, self.service_fee_percent)
    }

    /// Adds to `micro` (µWh per tier) the `delta` Wh delivered at constant power over [from_ms, to_ms).
    fn spread(&self, from_ms: i64, to_ms: i64, delta: u128, micro: &mut [u128; 5]) {
        if to_ms <= from_ms {
            micro[self.slot_at(to_ms).tier.index()] += delta * MICRO;
            return;
        }
        let (t0, t1) = (beijing_ms(from_ms), beijing_ms(to_ms));
        let mut overlap = [0u128; 5];
        for slot in &self.slots {
            let ms = covered_ms(slot, t1) - covered_ms(slot, t0);
            overlap[slot.tier.index()] += ms.unsigned_abs();
        }
        // The slots tile the day, so the overlaps add up to the duration. `delta < 2^63` and
        // `overlap <= duration < 2^64`, so `delta × overlap < 2^127` fits; the µWh fraction is computed from
        // the remainder (< duration) so that multiplying by MICRO cannot overflow either.
        let duration = (t1 - t0).unsigned_abs();
        let mut shares = [0u128; 5];
        let mut remainders = [0u128; 5];
        for i in 0..5 {
            let product = delta * overlap[i];
            let (quotient, rest) = (product / duration, product % duration);
            shares[i] = quotient * MICRO + rest * MICRO / duration;
            remainders[i] = rest * MICRO % duration;
        }
        let shortfall = (delta * MICRO).saturating_sub(shares.iter().sum());
        largest_remainder(&mut shares, &remainders, shortfall);
        for (m, s) in micro.iter_mut().zip(shares) {
            *m += s;
        }
    }
}

/// Gives `shortfall` units, one each, to the entries with the largest remainders (ties: lower `timeType`
/// first, so a bill is reproducible). Callers pass a shortfall that is the sum of the remainders' fractions,
/// hence smaller than the number of non-zero remainders.
fn largest_remainder(values: &mut [u128; 5], remainders: &[u128; 5], shortfall: u128) {
    let mut order = [0usize, 1, 2, 3, 4];
    order.sort_by(|&a, &b| remainders[b].cmp(&remainders[a]).then(a.cmp(&b)));
    for &i in order.iter().take(usize::try_from(shortfall).unwrap_or(usize::MAX)) {
        values[i] += 1;
    }
}

/// ms since the Unix epoch → ms since the Beijing-local epoch (1970-01-01 00:00 +08:00 is 0).
fn beijing_ms(at_ms: i64) -> i128 {
    i128::from(at_ms) + i128::from(BEIJING.local_minus_utc()) * 1000
}

/// ms since Beijing midnight of the instant `at_ms`, 0..86_400_000.
fn beijing_day_ms(at_ms: i64) -> i128 {
    beijing_ms(at_ms).rem_euclid(DAY_MS)
}

/// How many ms of [0, x) (Beijing-local ms, negative x meaning a negative measure) fall inside `slot` on any
/// day. The difference of two of these is the slot's share of an interval of any length, without walking
/// the days in between.
fn covered_ms(slot: &Slot, x: i128) -> i128 {
    let start = i128::from(slot.start_min) * MINUTE_MS;
    let len = i128::from(slot.end_min - slot.start_min) * MINUTE_MS;
    x.div_euclid(DAY_MS) * len + (x.rem_euclid(DAY_MS) - start).clamp(0, len)
}

/// `amount` rounded half-up to `dp` decimals (amounts here are never negative, so away-from-zero is half-up).
fn half_up(amount: Decimal, dp: u32) -> Decimal {
    amount.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
}

/// A tier line's amount, fen: its whole energy (Wh) × rate (yuan/kWh), rounded half-up to the fen once.
fn line_amount_fen(energy_wh: i64, rate: Decimal) -> i64 {
    // Overflow needs more than ~10^16 yuan, which no meter produces; saturate rather than fail a bill.
    kwh(energy_wh).checked_mul(rate).map(|yuan| half_up(yuan, 2)).and_then(crate::money::fen).unwrap_or(i64::MAX)
}

/// One meter reading of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When it was read, ms since the Unix epoch (UTC).
    pub at_ms: i64,
    /// Energy delivered since the session started, Wh (cumulative).
    pub energy_wh: i64,
}

/// One tier's line of the bill (§5.2 `sharpElectricity`/`sharpAmount` and the like).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Line {
    /// Energy delivered in the tier's slots, Wh.
    pub energy_wh: i64,
    /// `energy_wh` × the tier's rate, rounded half-up to the fen; fen.
    pub amount_fen: i64,
}

/// The bill of a session (§5.2 `amount`, `serviceFee`, `totalAmount`, `powerConsumption`, the tier lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    /// One line per tier, indexed by `Tier::time_type() - 1`.
    pub lines: [Line; 5],
    /// Total energy, Wh: exactly the sum of the lines' energy.
    pub energy_wh: i64,
    /// Electricity (`amount`), fen: the sum of the lines' amounts.
    pub amount_fen: i64,
    /// Service fee (`serviceFee`), fen: `amount_fen` × the service fee percent / 100, rounded half-up.
    pub service_fee_fen: i64,
    /// What the user pays (`totalAmount`), fen: `amount_fen + service_fee_fen`.
    pub total_fen: i64,
}

impl Bill {
    /// The line of one tier.
    pub fn line(&self, tier: Tier) -> Line {
        self.lines[tier.index()]
    }

    /// Totals the lines and adds the service fee (percent of the electricity amount).
    fn from_lines(lines: [Line; 5], service_fee_percent: Decimal) -> Bill {
        let energy_wh = lines.iter().fold(0i64, |sum, l| sum.saturating_add(l.energy_wh));
        let amount_fen = lines.iter().fold(0i64, |sum, l| sum.saturating_add(l.amount_fen));
        // In fen, so rounding to 0 decimals is rounding to the fen. Saturates like `line_amount_fen`.
        let service_fee_fen = Decimal::from(amount_fen)
            .checked_mul(service_fee_percent)
            .and_then(|f| f.checked_div(Decimal::ONE_HUNDRED))
            .and_then(|f| i64::try_from(half_up(f, 0)).ok())
            .unwrap_or(i64::MAX);
        Bill { lines, energy_wh, amount_fen, service_fee_fen, total_fen: amount_fen.saturating_add(service_fee_fen) }
    }
}

/// Wh as kWh with three decimals, for the wire (`12345` → `12.345`).
pub fn kwh(wh: i64) -> Decimal {
    Decimal::new(wh, 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A decimal literal.
    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// ms since the epoch of a Beijing wall-clock time on 2023-06-`day`.
    fn bj(day: u32, h: u32, m: u32, s: u32) -> i64 {
        BEIJING.with_ymd_and_hms(2023, 6, day, h, m, s).unwrap().timestamp_millis()
    }

    fn sample(at_ms: i64, energy_wh: i64) -> Sample {
        Sample { at_ms, energy_wh }
    }

    fn slot(tier: Tier, start: &str, end: &str, rate: &str) -> Slot {
        Slot { tier, start_min: parse_hhmm(start).unwrap(), end_min: parse_hhmm(end).unwrap(), rate: d(rate) }
    }

    /// BR001 of the 003 §8.2 example, deliberately listed out of order.
    fn demo() -> Tariff {
        Tariff::new(
            vec![
                slot(Tier::Sharp, "11:00", "12:00", "1.25"),
                slot(Tier::Peak, "10:00", "11:00", "1.05"),
                slot(Tier::Peak, "14:00", "19:00", "1.05"),
                slot(Tier::Flat, "08:00", "10:00", "0.70"),
                slot(Tier::Flat, "12:00", "14:00", "0.70"),
                slot(Tier::Flat, "19:00", "24:00", "0.70"),
                slot(Tier::Valley, "00:00", "02:00", "0.30"),
                slot(Tier::Valley, "06:00", "08:00", "0.30"),
                slot(Tier::DeepValley, "02:00", "06:00", "0.22"),
            ],
            d("15"),
        )
        .unwrap()
    }

    fn energies(bill: &Bill) -> [i64; 5] {
        bill.lines.map(|l| l.energy_wh)
    }

    fn amounts(bill: &Bill) -> [i64; 5] {
        bill.lines.map(|l| l.amount_fen)
    }

    /// The totals a bill must always satisfy.
    fn assert_consistent(bill: &Bill) {
        assert_eq!(bill.energy_wh, bill.lines.iter().map(|l| l.energy_wh).sum::<i64>());
        assert_eq!(bill.amount_fen, bill.lines.iter().map(|l| l.amount_fen).sum::<i64>());
        assert_eq!(bill.total_fen, bill.amount_fen + bill.service_fee_fen);
        assert!(bill.lines.iter().all(|l| l.energy_wh >= 0 && l.amount_fen >= 0));
    }

    #[test]
    fn tiers_follow_time_type() {
        for (i, tier) in Tier::ALL.into_iter().enumerate() {
            assert_eq!(tier.time_type(), i as i32 + 1);
            assert_eq!(Tier::from_time_type(tier.time_type()), Some(tier));
        }
        assert_eq!(Tier::from_time_type(0), None);
        assert_eq!(Tier::from_time_type(6), None);
    }

    #[test]
    fn parse_hhmm_accepts_the_day_and_24_00() {
        assert_eq!(parse_hhmm("00:00"), Some(0));
        assert_eq!(parse_hhmm("08:00"), Some(480));
        assert_eq!(parse_hhmm("23:59"), Some(1439));
        assert_eq!(parse_hhmm("24:00"), Some(1440));
    }

    #[test]
    fn parse_hhmm_refuses_malformed_times() {
        for bad in ["24:01", "7:5", "25:00", "12:60", "07:5", "7:05", "", "0800", "08-00", "+8:00", "08:00 ", "０８:００"] {
            assert_eq!(parse_hhmm(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn slots_print_as_the_document_writes_them() {
        let s = slot(Tier::Flat, "19:00", "24:00", "0.70");
        assert_eq!((s.hhmm_start(), s.hhmm_end()), ("19:00".to_string(), "24:00".to_string()));
        assert_eq!(s.to_string(), "平时 19:00–24:00 @ 0.70 yuan/kWh");
    }

    #[test]
    fn new_sorts_the_slots() {
        let t = demo();
        let starts: Vec<_> = t.slots().iter().map(Slot::hhmm_start).collect();
        assert_eq!(starts, ["00:00", "02:00", "06:00", "08:00", "10:00", "11:00", "12:00", "14:00", "19:00"]);
        assert_eq!(t.service_fee_percent(), d("15"));
    }

    #[test]
    fn validation_refuses_a_gap() {
        let err = Tariff::new(
            vec![slot(Tier::Valley, "00:00", "08:00", "0.3"), slot(Tier::Flat, "09:00", "24:00", "0.7")],
            d("15"),
        )
        .unwrap_err();
        assert!(matches!(err, TariffError::Gap { start_min: 480, end_min: 540, .. }), "{err:?}");
        assert_eq!(err.to_string(), "no slot covers 08:00–09:00 (next to slot 平时 09:00–24:00 @ 0.7 yuan/kWh)");
        // Gaps at either end of the day.
        let err = Tariff::new(vec![slot(Tier::Flat, "00:30", "24:00", "0.7")], d("0")).unwrap_err();
        assert!(matches!(err, TariffError::Gap { start_min: 0, end_min: 30, .. }), "{err:?}");
        let err = Tariff::new(vec![slot(Tier::Flat, "00:00", "23:59", "0.7")], d("0")).unwrap_err();
        assert!(matches!(err, TariffError::Gap { start_min: 1439, end_min: 1440, .. }), "{err:?}");
    }

    #[test]
    fn validation_refuses_an_overlap() {
        let err = Tariff::new(
            vec![
                slot(Tier::Valley, "00:00", "08:00", "0.3"),
                slot(Tier::Flat, "07:30", "24:00", "0.7"),
            ],
            d("15"),
        )
        .unwrap_err();
        assert!(matches!(err, TariffError::Overlap { .. }), "{err:?}");
        assert!(err.to_string().contains("平时 07:30–24:00"), "{err}");
        // The same slot twice overlaps itself.
        let whole = slot(Tier::Flat, "00:00", "24:00", "0.7");
        let err = Tariff::new(vec![whole.clone(), whole], d("15")).unwrap_err();
        assert!(matches!(err, TariffError::Overlap { .. }), "{err:?}");
    }

    #[test]
    fn validation_refuses_empty_and_backwards_slots() {
        let backwards = Slot { tier: Tier::Peak, start_min: 600, end_min: 540, rate: d("1.05") };
        let err = Tariff::new(vec![slot(Tier::Flat, "00:00", "24:00", "0.7"), backwards], d("15")).unwrap_err();
        assert!(matches!(err, TariffError::EmptySlot(_)), "{err:?}");
        assert!(err.to_string().contains("峰时 10:00–09:00"), "{err}");
        let empty = Slot { tier: Tier::Peak, start_min: 600, end_min: 600, rate: d("1.05") };
        assert!(matches!(Tariff::new(vec![empty], d("15")), Err(TariffError::EmptySlot(_))));
        let past_midnight = Slot { tier: Tier::Peak, start_min: 0, end_min: 1441, rate: d("1.05") };
        assert!(matches!(Tariff::new(vec![past_midnight], d("15")), Err(TariffError::EmptySlot(_))));
        assert!(matches!(Tariff::new(vec![], d("15")), Err(TariffError::NoSlots)));
    }

    #[test]
    fn validation_refuses_bad_rates_and_fees() {
        let err = Tariff::flat(d("-0.01"), d("15")).unwrap_err();
        assert!(matches!(err, TariffError::NegativeRate(_)), "{err:?}");
        assert!(err.to_string().contains("平时 00:00–24:00"), "{err}");
        assert!(Tariff::flat(d("0"), d("15")).is_ok());
        assert!(matches!(Tariff::flat(d("0.85"), d("100.01")), Err(TariffError::FeePercent(_))));
        assert!(matches!(Tariff::flat(d("0.85"), d("-1")), Err(TariffError::FeePercent(_))));
        assert!(Tariff::flat(d("0.85"), d("100")).is_ok());
        assert!(Tariff::flat(d("0.85"), d("0")).is_ok());
        let err = Tariff::new(
            vec![slot(Tier::Peak, "00:00", "12:00", "1.05"), slot(Tier::Peak, "12:00", "24:00", "1.10")],
            d("15"),
        )
        .unwrap_err();
        assert!(matches!(err, TariffError::TierRates { .. }), "{err:?}");
    }

    #[test]
    fn end_at_24_00_is_accepted() {
        let t = Tariff::new(
            vec![slot(Tier::Valley, "00:00", "07:00", "0.3"), slot(Tier::Flat, "07:00", "24:00", "0.7")],
            d("10"),
        )
        .unwrap();
        assert_eq!(t.slot_at(bj(15, 23, 59, 59) + 999).tier, Tier::Flat);
        assert_eq!(t.slot_at(bj(16, 0, 0, 0)).tier, Tier::Valley);
    }

    #[test]
    fn deserializing_validates() {
        let t = demo();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Tariff>(&json).unwrap(), t);
        let gap = r#"{"slots":[{"tier":"Flat","start_min":0,"end_min":600,"rate":"0.7"}],"service_fee_percent":"15"}"#;
        let err = serde_json::from_str::<Tariff>(gap).unwrap_err();
        assert!(err.to_string().contains("no slot covers 10:00–24:00"), "{err}");
    }

    #[test]
    fn slot_at_uses_beijing_time_and_half_open_slots() {
        let t = demo();
        assert_eq!(t.slot_at(bj(15, 10, 59, 59) + 999).tier, Tier::Peak);
        assert_eq!(t.slot_at(bj(15, 11, 0, 0)).tier, Tier::Sharp);
        assert_eq!(t.slot_at(bj(15, 0, 0, 0)).tier, Tier::Valley);
        assert_eq!(t.slot_at(bj(15, 2, 0, 0)).tier, Tier::DeepValley);
        // 2023-06-15T03:00:00Z is 11:00 in Beijing, not 03:00.
        assert_eq!(t.slot_at(1_686_798_000_000).tier, Tier::Sharp);
        // Before the epoch too (1969-12-31T16:00:00Z is 00:00 Beijing).
        assert_eq!(t.slot_at(-8 * 3_600_000).tier, Tier::Valley);
        assert_eq!(t.slot_at(-8 * 3_600_000 - 1).tier, Tier::Flat);
    }

    #[test]
    fn energy_on_a_slot_boundary() {
        let t = demo();
        // Readings at one instant: all of it belongs to that instant's slot.
        let at_10_59_59 = t.bill(&[sample(bj(15, 10, 59, 59), 0), sample(bj(15, 10, 59, 59), 500)]);
        assert_eq!(energies(&at_10_59_59), [0, 500, 0, 0, 0]);
        let at_11_00_00 = t.bill(&[sample(bj(15, 11, 0, 0), 0), sample(bj(15, 11, 0, 0), 500)]);
        assert_eq!(energies(&at_11_00_00), [500, 0, 0, 0, 0]);
        // [10:59:59, 11:00:00) is all 峰; [11:00:00, 11:00:01) is all 尖.
        let before = t.bill(&[sample(bj(15, 10, 59, 59), 0), sample(bj(15, 11, 0, 0), 1000)]);
        assert_eq!(energies(&before), [0, 1000, 0, 0, 0]);
        let after = t.bill(&[sample(bj(15, 11, 0, 0), 0), sample(bj(15, 11, 0, 1), 1000)]);
        assert_eq!(energies(&after), [1000, 0, 0, 0, 0]);
        // 1 kWh: 峰 1.05 yuan, 尖 1.25 yuan.
        assert_eq!(before.amount_fen, 105);
        assert_eq!(after.amount_fen, 125);
    }

    #[test]
    fn session_crossing_midnight() {
        let t = demo();
        // 23:30 → 00:30 next day at a constant 10 kW, read every 15 minutes: 30 min in 平 19–24, 30 min in
        // 谷 00–02. 平 5 kWh × 0.70 = 3.50; 谷 5 kWh × 0.30 = 1.50; amount 5.00; fee 5.00 × 15 % = 0.75;
        // total 5.75.
        let start = bj(15, 23, 30, 0);
        let samples: Vec<_> = (0..=4).map(|k| sample(start + k * 15 * 60_000, k * 2500)).collect();
        let bill = t.bill(&samples);
        assert_eq!(energies(&bill), [0, 0, 5000, 5000, 0]);
        assert_eq!(amounts(&bill), [0, 0, 350, 150, 0]);
        assert_eq!((bill.energy_wh, bill.amount_fen, bill.service_fee_fen, bill.total_fen), (10_000, 500, 75, 575));
        assert_consistent(&bill);
        // Two readings only, one interval across midnight: the same split.
        let sparse = t.bill(&[sample(start, 0), sample(bj(16, 0, 30, 0), 10_000)]);
        assert_eq!(sparse, bill);
    }

    #[test]
    fn one_interval_straddling_two_boundaries_is_split_by_time() {
        let t = demo();
        // 09:30 → 11:30, 12 kWh in one interval: 30 min 平, 60 min 峰, 30 min 尖 → 3000, 6000, 3000 Wh.
        let bill = t.bill(&[sample(bj(15, 9, 30, 0), 0), sample(bj(15, 11, 30, 0), 12_000)]);
        assert_eq!(energies(&bill), [3000, 6000, 3000, 0, 0]);
        assert_consistent(&bill);
    }

    #[test]
    fn an_interval_of_days_is_split_without_walking_them() {
        let t = demo();
        // Exactly 1000 days at constant power: each tier's share is its minutes per day / 1440.
        // 尖 60, 峰 60 + 300 = 360, 平 120 + 120 + 300 = 540, 谷 120 + 120 = 240, 深谷 240 minutes → of
        // 1_440_000 Wh (1000 Wh a minute-of-day): 60_000, 360_000, 540_000, 240_000, 240_000.
        let start = bj(1, 0, 0, 0);
        let bill = t.bill(&[sample(start, 0), sample(start + 1000 * 86_400_000, 1_440_000)]);
        assert_eq!(energies(&bill), [60_000, 360_000, 540_000, 240_000, 240_000]);
    }

    #[test]
    fn demo_rule_known_session() {
        let t = demo();
        // 07:30 → 10:30 Beijing at a constant 20 kW, read at 07:30, 09:00, 10:30 (sparse).
        //   [07:30, 09:00) 30 000 Wh: 30 min 谷 = 10 000, 60 min 平 = 20 000
        //   [09:00, 10:30) 30 000 Wh: 60 min 平 = 20 000, 30 min 峰 = 10 000
        // 谷 10 kWh × 0.30 = 3.00; 平 40 kWh × 0.70 = 28.00; 峰 10 kWh × 1.05 = 10.50
        // amount = 41.50; service fee = 41.50 × 15 % = 6.225 → 6.23 (half-up); total = 47.73.
        let bill = t.bill(&[
            sample(bj(15, 7, 30, 0), 0),
            sample(bj(15, 9, 0, 0), 30_000),
            sample(bj(15, 10, 30, 0), 60_000),
        ]);
        assert_eq!(energies(&bill), [0, 10_000, 40_000, 10_000, 0]);
        assert_eq!(amounts(&bill), [0, 1050, 2800, 300, 0]);
        assert_eq!(bill.line(Tier::Flat), Line { energy_wh: 40_000, amount_fen: 2800 });
        assert_eq!((bill.energy_wh, bill.amount_fen, bill.service_fee_fen, bill.total_fen), (60_000, 4150, 623, 4773));
        assert_consistent(&bill);
    }

    #[test]
    fn document_example_order() {
        let t = demo();
        // §5.2 example ORD000123, Beijing 10:30:12 → 12:05:42, read at the slot boundaries.
        //   峰 12.22 kWh × 1.05 = 12.831 → 12.83; 尖 24.60 × 1.25 = 30.75; 平 2.34 × 0.70 = 1.638 → 1.64
        //   amount = 45.22; fee = 45.22 × 15 % = 6.783 → 6.78; total = 52.00.
        let bill = t.bill(&[
            sample(bj(15, 10, 30, 12), 0),
            sample(bj(15, 11, 0, 0), 12_220),
            sample(bj(15, 12, 0, 0), 36_820),
            sample(bj(15, 12, 5, 42), 39_160),
        ]);
        assert_eq!(energies(&bill), [24_600, 12_220, 2_340, 0, 0]);
        assert_eq!(amounts(&bill), [3075, 1283, 164, 0, 0]);
        assert_eq!((bill.amount_fen, bill.service_fee_fen, bill.total_fen), (4522, 678, 5200));
        assert_eq!(kwh(bill.energy_wh), d("39.16"));
    }

    #[test]
    fn each_line_is_rounded_half_up_on_its_own() {
        let t = demo();
        // 尖 4 Wh × 1.25 = 0.005 yuan → 0.01; 峰 5 Wh × 1.05 = 0.00525 → 0.01. Per line: 0.02 yuan; rounding
        // the sum (0.01025) once would give 0.01.
        let bill = t.bill(&[
            sample(bj(15, 10, 30, 0), 0),
            sample(bj(15, 10, 30, 0), 5),
            sample(bj(15, 11, 30, 0), 5),
            sample(bj(15, 11, 30, 0), 9),
        ]);
        assert_eq!(energies(&bill), [4, 5, 0, 0, 0]);
        assert_eq!(amounts(&bill), [1, 1, 0, 0, 0]);
        assert_eq!(bill.amount_fen, 2);
        // Fee: 0.02 × 15 % = 0.003 → 0.00.
        assert_eq!((bill.service_fee_fen, bill.total_fen), (0, 2));
        // Just below half a fen rounds down: 平 7 Wh × 0.70 = 0.0049 → 0.00.
        let down = t.bill(&[sample(bj(15, 9, 0, 0), 0), sample(bj(15, 9, 0, 0), 7)]);
        assert_eq!(down.line(Tier::Flat), Line { energy_wh: 7, amount_fen: 0 });
    }

    #[test]
    fn a_line_is_priced_on_its_total_not_per_interval() {
        let t = demo();
        // 尖 gets 2 Wh in each of two intervals: priced per interval, 2 Wh × 1.25 = 0.0025 yuan would round to
        // 0.00 twice; the line's 4 Wh × 1.25 = 0.005 yuan rounds to 0.01.
        let bill = t.bill(&[
            sample(bj(15, 11, 10, 0), 0),
            sample(bj(15, 11, 20, 0), 2),
            sample(bj(15, 11, 30, 0), 4),
        ]);
        assert_eq!(bill.line(Tier::Sharp), Line { energy_wh: 4, amount_fen: 1 });
    }

    #[test]
    fn largest_remainder_allocation_sums_exactly() {
        // Three tiers of eight hours each; one 24-hour interval of 100 Wh: 33⅓ each. Floors give 99; the
        // last Wh goes to the tie's lowest timeType.
        let t = Tariff::new(
            vec![
                slot(Tier::Valley, "00:00", "08:00", "0.3"),
                slot(Tier::Flat, "08:00", "16:00", "0.7"),
                slot(Tier::Peak, "16:00", "24:00", "1.05"),
            ],
            d("15"),
        )
        .unwrap();
        let bill = t.bill(&[sample(bj(15, 0, 0, 0), 0), sample(bj(16, 0, 0, 0), 100)]);
        assert_eq!(energies(&bill), [0, 34, 33, 33, 0]);
        // 09:40 → 12:20 on the demo rule, 100 Wh: 平 40 min, 峰 60, 尖 60 → 25, 37.5, 37.5; floors 99;
        // 尖 and 峰 tie at .5 and 尖 (timeType 1) gets the last Wh.
        let bill = demo().bill(&[sample(bj(15, 9, 40, 0), 0), sample(bj(15, 12, 20, 0), 100)]);
        assert_eq!(energies(&bill), [38, 37, 25, 0, 0]);
        // The fractions add up over the session, not per interval: three 1 Wh intervals 10:55 → 11:10 on
        // consecutive days, each split 5 min 峰 : 10 min 尖 = ⅓ : ⅔. Over the session 峰 has 1 Wh and 尖 2 Wh;
        // rounding each interval to whole Wh would have given 尖 all 3.
        let mut samples = Vec::new();
        for (k, day) in (15..=17).enumerate() {
            let k = k as i64;
            samples.extend([sample(bj(day, 10, 55, 0), k), sample(bj(day, 11, 10, 0), k + 1)]);
        }
        let bill = demo().bill(&samples);
        assert_eq!(energies(&bill), [2, 1, 0, 0, 0]);
    }

    #[test]
    fn random_sessions_always_add_up() {
        let t = demo();
        let mut rng = fastrand::Rng::with_seed(2023);
        for _ in 0..500 {
            let mut at = bj(15, 0, 0, 0) + rng.i64(0..86_400_000);
            let mut energy = rng.i64(0..1000);
            let mut samples = vec![sample(at, energy)];
            for _ in 0..rng.usize(1..40) {
                at += rng.i64(0..3 * 3_600_000);
                energy += rng.i64(-50..5000);
                samples.push(sample(at, energy));
            }
            let bill = t.bill(&samples);
            assert_consistent(&bill);
            let high = samples.iter().map(|s| s.energy_wh.max(0)).max().unwrap();
            assert_eq!(bill.energy_wh, high - samples[0].energy_wh.max(0));
        }
    }

    #[test]
    fn decreasing_energy_is_ignored() {
        let t = Tariff::flat(d("1"), d("10")).unwrap();
        // 0 → 1000 → 400 (glitch) → 1500: the dip delivers nothing and the climb back to 1000 is not counted
        // twice; the bill is 1500 Wh = last − first.
        let at = bj(15, 9, 0, 0);
        let bill = t.bill(&[sample(at, 0), sample(at + 60_000, 1000), sample(at + 120_000, 400), sample(at + 180_000, 1500)]);
        assert_eq!(bill.energy_wh, 1500);
        assert_consistent(&bill);
        // Only decreasing: nothing at all.
        let bill = t.bill(&[sample(at, 1000), sample(at + 60_000, 300)]);
        assert_eq!((bill.energy_wh, bill.total_fen), (0, 0));
        // A reading going back in time lands in the slot of its own instant.
        let bill = demo().bill(&[sample(bj(15, 11, 30, 0), 0), sample(bj(15, 10, 30, 0), 1000)]);
        assert_eq!(energies(&bill), [0, 1000, 0, 0, 0]);
    }

    #[test]
    fn no_or_one_sample_bills_nothing() {
        let t = demo();
        let zero = Bill { lines: [Line::default(); 5], energy_wh: 0, amount_fen: 0, service_fee_fen: 0, total_fen: 0 };
        assert_eq!(t.bill(&[]), zero);
        assert_eq!(t.bill(&[sample(bj(15, 12, 0, 0), 1234)]), zero);
    }

    #[test]
    fn flat_tariff() {
        // BR000: 0.85 yuan/kWh all day, 15 %. 17.64 kWh across 平/峰/尖 boundaries of the demo rule is all 平:
        // 17.64 × 0.85 = 14.994 → 14.99; fee 14.99 × 15 % = 2.2485 → 2.25; total 17.24.
        let t = Tariff::flat(d("0.85"), d("15")).unwrap();
        assert_eq!(t.slots(), [slot(Tier::Flat, "00:00", "24:00", "0.85")]);
        assert_eq!(t.slot_at(bj(15, 3, 0, 0)).tier, Tier::Flat);
        let bill = t.bill(&[sample(bj(15, 9, 30, 0), 0), sample(bj(15, 12, 30, 0), 17_640)]);
        assert_eq!(energies(&bill), [0, 0, 17_640, 0, 0]);
        assert_eq!((bill.amount_fen, bill.service_fee_fen, bill.total_fen), (1499, 225, 1724));
    }

    #[test]
    fn kwh_has_three_decimals() {
        assert_eq!(kwh(12_345).to_string(), "12.345");
        assert_eq!(kwh(0).to_string(), "0.000");
        assert_eq!(kwh(39_160), d("39.16"));
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        let t = demo();
        let bill = t.bill(&[sample(i64::MIN, 0), sample(i64::MAX, i64::MAX)]);
        assert_eq!(bill.energy_wh, i64::MAX);
        assert_consistent(&bill);
        let bill = t.bill(&[sample(0, i64::MIN), sample(1, -5), sample(2, 3)]);
        assert_eq!(bill.energy_wh, 3);
    }
}
