//! KPI arithmetic: what each event adds to its unit's day bucket, and how ratios
//! are formed from summed numerators and denominators at read time (never by
//! averaging stored ratios), so units roll up to groups and the province exactly.
//!
//! Definitions (docs/KPIS.md has the references):
//! - online share (tỷ lệ hồ sơ trực tuyến mức độ 3, 4) = dossiers received through the
//!   online channel at service level 3 or 4 / dossiers received.
//! - postal intake (tiếp nhận qua bưu chính công ích) = dossiers received by post / dossiers received.

use serde::{Deserialize, Serialize};

use crate::event::{Channel, DossierEvent, DossierEventKind};

/// The province's target for the online share (letter 301/UBND-NC, 2019): at least 30%.
pub const ONLINE_SHARE_TARGET: f64 = 0.30;

/// On-time rate target. The letter asks that no dossier be late; 90% is the line below
/// which parpulse alerts (a provincial choice, docs/KPIS.md; confirm with the PAR office).
pub const ON_TIME_TARGET: f64 = 0.90;

/// Every late dossier needs an apology letter (Decree 61/2018/NĐ-CP practice, docs/KPIS.md).
pub const APOLOGY_COVERAGE_TARGET: f64 = 1.0;

/// `add`, `sub` and the stored names of a struct of counts, from one list of its fields:
/// a day bucket stores each count as a row named after its field (`day_count`), so a new
/// count is a field here and its name in this list, nothing in storage.
macro_rules! named_counts {
    ($counts:ident { $($field:ident),+ $(,)? }) => {
        impl $counts {
            /// The stored names of these counts.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),+];

            pub fn add(&mut self, other: &$counts) {
                $(self.$field += other.$field;)+
            }

            /// Takes `other` out (a dossier whose contribution moved), never below zero.
            pub fn sub(&mut self, other: &$counts) {
                $(self.$field = self.$field.saturating_sub(other.$field);)+
            }

            /// Each count with its stored name.
            pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$((stringify!($field), self.$field)),+].into_iter()
            }

            /// Sets the count stored as `name`; false when these counts have none by that name.
            pub fn set_named(&mut self, name: &str, value: u64) -> bool {
                match name {
                    $(stringify!($field) => self.$field = value,)+
                    _ => return false,
                }
                true
            }
        }
    };
}

/// Counts of one unit on one local day. Counts only: ratios are formed when read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DossierDayCounts {
    /// Dossiers received (đã tiếp nhận) this day.
    pub received: u64,
    /// Of those, received online at service level 3 or 4.
    pub received_online: u64,
    /// Of those, received through the public postal service.
    pub received_postal: u64,
}

impl DossierDayCounts {
    /// Adds one event's contribution. Returns whether the bucket changed.
    pub fn apply<S>(&mut self, event: &DossierEvent<S>) -> bool {
        if event.kind != DossierEventKind::Received {
            return false;
        }
        self.received += 1;
        if counts_as_online(event) {
            self.received_online += 1;
        }
        if event.channel == Channel::Postal {
            self.received_postal += 1;
        }
        true
    }

    pub fn online_share(&self) -> Option<f64> {
        ratio(self.received_online, self.received)
    }

    pub fn postal_intake_share(&self) -> Option<f64> {
        ratio(self.received_postal, self.received)
    }
}

named_counts!(DossierDayCounts { received, received_online, received_postal });

/// A dossier counts toward the online share when it came in online at level 3 or 4.
pub fn counts_as_online<S>(event: &DossierEvent<S>) -> bool {
    event.channel == Channel::Online && event.online_level >= 3
}

/// numerator / denominator, or `None` when nothing was counted (no value beats a fake 0%).
pub fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: DossierEventKind, channel: Channel, level: i32) -> DossierEvent {
        DossierEvent {
            event_id: "6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b11".into(),
            agency_code: "SNV".into(),
            occurred_at: 0,
            recorded_at: 0,
            source: "test".into(),
            dossier_id: "D".into(),
            procedure_code: "P".into(),
            kind,
            channel,
            online_level: level,
            result_channel: None,
            due_at: None,
            legal_max_days: None,
            fee_bearing: false,
            digitized: false,
            new_due_at: None,
        }
    }

    #[test]
    fn only_received_events_count() {
        let mut day = DossierDayCounts::default();
        assert!(!day.apply(&event(DossierEventKind::Submitted, Channel::Online, 4)));
        assert!(!day.apply(&event(DossierEventKind::Processed, Channel::Online, 4)));
        assert_eq!(day, DossierDayCounts::default());
    }

    #[test]
    fn online_share_counts_level_three_and_four_online_receptions() {
        let mut day = DossierDayCounts::default();
        day.apply(&event(DossierEventKind::Received, Channel::Online, 4));
        day.apply(&event(DossierEventKind::Received, Channel::Online, 3));
        day.apply(&event(DossierEventKind::Received, Channel::InPerson, 4));
        day.apply(&event(DossierEventKind::Received, Channel::Postal, 2));
        assert_eq!(day, DossierDayCounts { received: 4, received_online: 2, received_postal: 1 });
        assert_eq!(day.online_share(), Some(0.5));
        assert_eq!(day.postal_intake_share(), Some(0.25));
    }

    #[test]
    fn no_dossiers_means_no_ratio_rather_than_zero() {
        assert_eq!(DossierDayCounts::default().online_share(), None);
    }

    #[test]
    fn roll_up_sums_counts_not_ratios() {
        // 1/1 and 0/3 average to 50%, but the province's share is 1/4.
        let a = DossierDayCounts { received: 1, received_online: 1, received_postal: 0 };
        let mut total = DossierDayCounts { received: 3, received_online: 0, received_postal: 0 };
        total.add(&a);
        assert_eq!(total.online_share(), Some(0.25));
    }
}

/// Dossiers that ended in a window, judged by the lateness rules (lifecycle.rs),
/// counted on the local day they ended; and results returned in the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedCounts {
    /// Dossiers resolved (giải quyết xong): processed, or otherwise ended; never refused ones.
    pub resolved: u64,
    /// Not late: early (trước hạn) and on time (đúng hạn).
    pub on_time: u64,
    /// Of `on_time`, early: ended on a day before the deadline's day.
    pub early: u64,
    pub late: u64,
    /// Late dossiers whose citizen received a timely apology letter (thư xin lỗi, sent by
    /// the last working day before the deadline).
    pub late_with_apology: u64,
    /// Late dossiers with no apology letter at all (neither timely nor late): the letter's
    /// "apologise when overdue" not done.
    pub late_without_apology: u64,
    /// Refused at reception (từ chối tiếp nhận), on the day refused: apart from `resolved`.
    pub refused: u64,
    /// Results returned (trả kết quả) among the resolved, and of those by post.
    pub returned: u64,
    pub returned_postal: u64,
    /// Of the resolved: withdrawn by the citizen (rút hồ sơ), and processing stopped (dừng xử lý).
    pub withdrawn: u64,
    pub stopped: u64,
}

impl ResolvedCounts {
    /// On-time rate (tỷ lệ đúng hạn) = on time / resolved.
    pub fn on_time_rate(&self) -> Option<f64> {
        ratio(self.on_time, self.resolved)
    }

    /// Apology coverage (tỷ lệ xin lỗi) = late with an apology letter / late; target 100%.
    pub fn apology_coverage(&self) -> Option<f64> {
        ratio(self.late_with_apology, self.late)
    }
}

named_counts!(ResolvedCounts {
    resolved,
    on_time,
    early,
    late,
    late_with_apology,
    late_without_apology,
    refused,
    returned,
    returned_postal,
    withdrawn,
    stopped,
});

/// Postal use (bưu chính công ích) = dossiers received by post or whose result is
/// registered for return by post / dossiers received, by reception day.
pub fn postal_use(service: &ServiceCounts) -> Option<f64> {
    ratio(service.postal_users, service.received)
}

/// Open dossiers now, and how many are past their deadline (a snapshot, not a window).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenCounts {
    pub open: u64,
    pub overdue: u64,
}

impl OpenCounts {
    pub fn add(&mut self, other: &OpenCounts) {
        self.open += other.open;
        self.overdue += other.overdue;
    }

    /// Overdue open (hồ sơ quá hạn đang xử lý) = open past deadline / open; target 0.
    pub fn overdue_ratio(&self) -> Option<f64> {
        ratio(self.overdue, self.open)
    }
}

#[cfg(test)]
mod lateness_tests {
    use super::*;

    #[test]
    fn rates_come_from_summed_counts() {
        let mut a = ResolvedCounts {
            resolved: 10,
            on_time: 9,
            late: 1,
            late_with_apology: 1,
            returned: 10,
            returned_postal: 2,
            ..Default::default()
        };
        a.add(&ResolvedCounts {
            resolved: 10,
            on_time: 5,
            late: 5,
            late_with_apology: 2,
            returned: 0,
            returned_postal: 0,
            ..Default::default()
        });
        assert_eq!(a.on_time_rate(), Some(0.7));
        assert_eq!(a.apology_coverage(), Some(0.5));
        let service = ServiceCounts { received: 10, result_postal: 2, postal_users: 3, ..Default::default() };
        assert_eq!(postal_use(&service), Some(0.3));
        assert_eq!(postal_use(&ServiceCounts::default()), None);
    }

    #[test]
    fn a_day_bucket_names_each_count_once_and_reads_back_what_it_named() {
        let mut counts = DayCounts::default();
        counts.receptions.received = 7;
        counts.receptions.received_postal = 2;
        counts.service = ServiceCounts { received: 7, digitized: 3, postal_users: 4, ..Default::default() };
        counts.resolved = ResolvedCounts { resolved: 5, late: 1, stopped: 2, ..Default::default() };
        let named: Vec<_> = counts.named().collect();
        let names: std::collections::BTreeSet<_> = named.iter().map(|(name, _)| *name).collect();
        assert_eq!(names.len(), named.len(), "no name twice: {named:?}");
        assert_eq!(
            named.len(),
            DossierDayCounts::NAMES.len() + ServiceCounts::NAMES.len() - 1 + ResolvedCounts::NAMES.len()
        );
        let mut back = DayCounts::default();
        for (name, value) in &named {
            assert!(back.set_named(name, *value), "{name}");
        }
        assert_eq!(back, counts);
        assert!(!back.set_named("a_count_of_a_newer_build", 1));
        assert_eq!(back, counts);
        // Each part adds and comes out again, field by field.
        back.add(&counts);
        assert_eq!((back.receptions.received, back.service.digitized, back.resolved.stopped), (14, 6, 4));
        back.sub(&counts);
        assert_eq!(back, counts);
        back.sub(&counts);
        back.sub(&counts);
        assert_eq!(back, DayCounts::default(), "never below zero");
    }

    #[test]
    fn sub_takes_out_each_count_and_stops_at_zero() {
        let ten = ResolvedCounts {
            resolved: 10,
            on_time: 11,
            early: 12,
            late: 13,
            late_with_apology: 14,
            late_without_apology: 21,
            refused: 15,
            returned: 16,
            returned_postal: 17,
            withdrawn: 18,
            stopped: 19,
        };
        let mut left = ten;
        left.sub(&ResolvedCounts {
            resolved: 1,
            on_time: 2,
            early: 3,
            late: 4,
            late_with_apology: 5,
            late_without_apology: 1,
            refused: 6,
            returned: 7,
            returned_postal: 8,
            withdrawn: 9,
            stopped: 20,
        });
        let want = ResolvedCounts {
            resolved: 9,
            on_time: 9,
            early: 9,
            late: 9,
            late_with_apology: 9,
            late_without_apology: 20,
            refused: 9,
            returned: 9,
            returned_postal: 9,
            withdrawn: 9,
            stopped: 0,
        };
        assert_eq!(left, want);
        let facts = ServiceCounts {
            received: 10,
            fee_bearing: 11,
            paid_online: 12,
            digitized: 13,
            result_postal: 14,
            postal_users: 15,
        };
        let mut left = facts;
        left.sub(&ServiceCounts {
            received: 1,
            fee_bearing: 2,
            paid_online: 3,
            digitized: 4,
            result_postal: 5,
            postal_users: 16,
        });
        let want = ServiceCounts {
            received: 9,
            fee_bearing: 9,
            paid_online: 9,
            digitized: 9,
            result_postal: 9,
            postal_users: 0,
        };
        assert_eq!(left, want);
    }

    #[test]
    fn no_late_dossiers_means_no_apology_ratio() {
        assert_eq!(ResolvedCounts::default().apology_coverage(), None);
        assert_eq!(OpenCounts::default().overdue_ratio(), None);
    }
}

/// The procedure catalogue's KPIs of one scope and window (docs/KPIS.md, "The
/// online-service indicators"). Unit-procedure pairs add up from units to the province.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcedureCounts {
    /// Catalogued procedures offered online at level 3/4 (unit-procedure pairs).
    pub offered_online: u64,
    /// Of those, the ones with at least one online reception in the window.
    pub offered_online_used: u64,
    /// Receptions of procedures the unit offers at level 3/4.
    pub received_offered_online: u64,
    /// Of those, online receptions.
    pub received_online_offered_online: u64,
    /// Receptions whose procedure is not in the unit's catalogue (counted everywhere else too).
    pub received_unknown: u64,
}

impl ProcedureCounts {
    pub fn add(&mut self, other: &ProcedureCounts) {
        self.offered_online += other.offered_online;
        self.offered_online_used += other.offered_online_used;
        self.received_offered_online += other.received_offered_online;
        self.received_online_offered_online += other.received_online_offered_online;
        self.received_unknown += other.received_unknown;
    }

    /// Tỷ lệ dịch vụ công trực tuyến mức độ 3, 4 có phát sinh hồ sơ: level-3/4 procedures
    /// with an online dossier / level-3/4 procedures offered.
    pub fn online_services_used(&self) -> Option<f64> {
        ratio(self.offered_online_used, self.offered_online)
    }

    /// Online receptions / receptions, over the procedures offered at level 3/4 only.
    pub fn online_share_of_offered(&self) -> Option<f64> {
        ratio(self.received_online_offered_online, self.received_offered_online)
    }
}

/// The staff reduction roadmap: at least 10% fewer positions than in the 2015 baseline (docs/KPIS.md).
pub const STAFF_REDUCTION_TARGET: f64 = 0.10;

fn vnd_ratio(numerator: i64, denominator: i64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// A unit's (or a roll-up's) administrative budget for one fiscal year, in whole VND.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetTotals {
    pub allocated: i64,
    pub committed: i64,
    pub disbursed: i64,
    pub saved: i64,
    pub disclosed: i64,
}

impl BudgetTotals {
    pub fn add(&mut self, other: &BudgetTotals) {
        self.allocated += other.allocated;
        self.committed += other.committed;
        self.disbursed += other.disbursed;
        self.saved += other.saved;
        self.disclosed += other.disclosed;
    }

    /// Budget execution (tỷ lệ giải ngân) = disbursed / allocated.
    pub fn execution(&self) -> Option<f64> {
        vnd_ratio(self.disbursed, self.allocated)
    }

    /// Savings (tiết kiệm chi) = saved / allocated.
    pub fn savings(&self) -> Option<f64> {
        vnd_ratio(self.saved, self.allocated)
    }

    /// Disclosure (công khai ngân sách) = disclosed / allocated.
    pub fn disclosure(&self) -> Option<f64> {
        vnd_ratio(self.disclosed, self.allocated)
    }
}

/// Staffing from the newest headcount snapshots (biên chế).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffingTotals {
    pub staff_quota: i64,
    pub staff_filled: i64,
    pub staff_baseline: i64,
    pub deputies_filled: i64,
    pub deputies_limit: i64,
    /// Deputies above the limit, summed unit by unit (a unit under its limit offsets nothing).
    pub deputies_over_limit: i64,
}

impl StaffingTotals {
    pub fn add(&mut self, other: &StaffingTotals) {
        self.staff_quota += other.staff_quota;
        self.staff_filled += other.staff_filled;
        self.staff_baseline += other.staff_baseline;
        self.deputies_filled += other.deputies_filled;
        self.deputies_limit += other.deputies_limit;
        self.deputies_over_limit += other.deputies_over_limit;
    }

    /// Reduction vs the baseline (tinh giản biên chế) = 1 - quota / baseline quota.
    pub fn reduction(&self) -> Option<f64> {
        vnd_ratio(self.staff_baseline - self.staff_quota, self.staff_baseline)
    }

    /// Filled positions / quota.
    pub fn fill(&self) -> Option<f64> {
        vnd_ratio(self.staff_filled, self.staff_quota)
    }
}

#[cfg(test)]
mod budget_staffing_tests {
    use super::*;

    #[test]
    fn procedure_counts_add_field_by_field_and_form_their_ratios() {
        let mut p = ProcedureCounts {
            offered_online: 2,
            offered_online_used: 3,
            received_offered_online: 5,
            received_online_offered_online: 7,
            received_unknown: 11,
        };
        p.add(&ProcedureCounts {
            offered_online: 13,
            offered_online_used: 17,
            received_offered_online: 19,
            received_online_offered_online: 23,
            received_unknown: 29,
        });
        let want = ProcedureCounts {
            offered_online: 15,
            offered_online_used: 20,
            received_offered_online: 24,
            received_online_offered_online: 30,
            received_unknown: 40,
        };
        assert_eq!(p, want);
        assert_eq!(p.online_services_used(), Some(20.0 / 15.0));
        assert_eq!(p.online_share_of_offered(), Some(30.0 / 24.0));
        assert_eq!(ProcedureCounts::default().online_services_used(), None);
        assert_eq!(ProcedureCounts::default().online_share_of_offered(), None);
    }

    #[test]
    fn budget_ratios_divide_by_the_allocation() {
        let b = BudgetTotals { allocated: 1_000, committed: 600, disbursed: 500, saved: 30, disclosed: 1_000 };
        assert_eq!((b.execution(), b.savings(), b.disclosure()), (Some(0.5), Some(0.03), Some(1.0)));
        assert_eq!(BudgetTotals::default().execution(), None);
    }

    #[test]
    fn reduction_is_measured_against_the_baseline() {
        let s = StaffingTotals { staff_quota: 90, staff_baseline: 100, ..Default::default() };
        assert_eq!(s.reduction(), Some(0.1));
    }
}

/// Facts of the Decision 766/QĐ-TTg service indicators, by reception day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCounts {
    pub received: u64,
    /// Procedures with a fee or charge (có phí, lệ phí).
    pub fee_bearing: u64,
    /// Of those, paid online (thanh toán trực tuyến).
    pub paid_online: u64,
    /// Inputs digitised and result issued electronically (số hoá).
    pub digitized: u64,
    /// Results registered for return by public postal service (on any event, also while open).
    pub result_postal: u64,
    /// Dossiers received by post, or with a result returned by post, or both.
    pub postal_users: u64,
}

named_counts!(ServiceCounts { received, fee_bearing, paid_online, digitized, result_postal, postal_users });

/// Everything a day bucket counts for one unit and local day: its receptions and the
/// facts of the dossiers received that day (by reception day), and the dossiers that
/// ended that day (by end day). Stored one row per count (`day_count`); `received` is
/// one count, shared by `receptions` and `service`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCounts {
    pub receptions: DossierDayCounts,
    pub service: ServiceCounts,
    pub resolved: ResolvedCounts,
}

impl DayCounts {
    pub fn add(&mut self, other: &DayCounts) {
        self.receptions.add(&other.receptions);
        self.service.add(&other.service);
        self.resolved.add(&other.resolved);
    }

    /// Takes `other` out (a dossier's contribution that moved), never below zero.
    pub fn sub(&mut self, other: &DayCounts) {
        self.receptions.sub(&other.receptions);
        self.service.sub(&other.service);
        self.resolved.sub(&other.resolved);
    }

    /// Each count with its stored name, `received` once.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> {
        let service = self.service.named().filter(|(name, _)| *name != "received");
        self.receptions.named().chain(service).chain(self.resolved.named())
    }

    /// Sets the count stored as `name`; false for a name this build does not know (a
    /// count a newer build stores: ignored).
    pub fn set_named(&mut self, name: &str, value: u64) -> bool {
        let receptions = self.receptions.set_named(name, value);
        let service = self.service.set_named(name, value);
        receptions | service || self.resolved.set_named(name, value)
    }
}

impl ServiceCounts {
    /// Online payment rate (766) = paid online / fee-bearing dossiers.
    pub fn online_payment_rate(&self) -> Option<f64> {
        ratio(self.paid_online, self.fee_bearing)
    }

    /// Digitization rate (766, target 80%) = digitized / received.
    pub fn digitization_rate(&self) -> Option<f64> {
        ratio(self.digitized, self.received)
    }
}

#[cfg(test)]
mod service_tests {
    use super::*;

    #[test]
    fn payment_rate_counts_fee_bearing_dossiers_only() {
        let s = ServiceCounts { received: 10, fee_bearing: 4, paid_online: 1, digitized: 8, ..Default::default() };
        assert_eq!(s.online_payment_rate(), Some(0.25));
        assert_eq!(s.digitization_rate(), Some(0.8));
        assert_eq!(ServiceCounts { fee_bearing: 0, ..s }.online_payment_rate(), None);
    }

    /// Each field its own value, so a field forgotten, subtracted, multiplied or added to
    /// another shows (the other tests add mostly zeros).
    #[test]
    fn every_total_adds_field_by_field() {
        let mut days = DossierDayCounts { received: 2, received_online: 3, received_postal: 5 };
        days.add(&DossierDayCounts { received: 7, received_online: 11, received_postal: 13 });
        assert_eq!(days, DossierDayCounts { received: 9, received_online: 14, received_postal: 18 });

        let mut resolved = ResolvedCounts {
            resolved: 2,
            on_time: 3,
            early: 5,
            late: 7,
            late_with_apology: 11,
            late_without_apology: 73,
            refused: 13,
            returned: 17,
            returned_postal: 19,
            withdrawn: 59,
            stopped: 61,
        };
        resolved.add(&ResolvedCounts {
            resolved: 23,
            on_time: 29,
            early: 31,
            late: 37,
            late_with_apology: 41,
            late_without_apology: 79,
            refused: 43,
            returned: 47,
            returned_postal: 53,
            withdrawn: 67,
            stopped: 71,
        });
        let want = ResolvedCounts {
            resolved: 25,
            on_time: 32,
            early: 36,
            late: 44,
            late_with_apology: 52,
            late_without_apology: 152,
            refused: 56,
            returned: 64,
            returned_postal: 72,
            withdrawn: 126,
            stopped: 132,
        };
        assert_eq!(resolved, want);

        let mut open = OpenCounts { open: 2, overdue: 3 };
        open.add(&OpenCounts { open: 5, overdue: 7 });
        assert_eq!(open, OpenCounts { open: 7, overdue: 10 });
        assert_eq!(open.overdue_ratio(), Some(10.0 / 7.0));

        let mut budget = BudgetTotals { allocated: 2, committed: 3, disbursed: 5, saved: 7, disclosed: 11 };
        budget.add(&BudgetTotals { allocated: 13, committed: 17, disbursed: 19, saved: 23, disclosed: 29 });
        assert_eq!(budget, BudgetTotals { allocated: 15, committed: 20, disbursed: 24, saved: 30, disclosed: 40 });

        let mut staffing = StaffingTotals {
            staff_quota: 2,
            staff_filled: 3,
            staff_baseline: 5,
            deputies_filled: 7,
            deputies_limit: 11,
            deputies_over_limit: 13,
        };
        staffing.add(&StaffingTotals {
            staff_quota: 17,
            staff_filled: 19,
            staff_baseline: 23,
            deputies_filled: 29,
            deputies_limit: 31,
            deputies_over_limit: 37,
        });
        let want = StaffingTotals {
            staff_quota: 19,
            staff_filled: 22,
            staff_baseline: 28,
            deputies_filled: 36,
            deputies_limit: 42,
            deputies_over_limit: 50,
        };
        assert_eq!(staffing, want);

        let mut service = ServiceCounts {
            received: 2,
            fee_bearing: 3,
            paid_online: 5,
            digitized: 7,
            result_postal: 11,
            postal_users: 13,
        };
        service.add(&ServiceCounts {
            received: 17,
            fee_bearing: 19,
            paid_online: 23,
            digitized: 29,
            result_postal: 31,
            postal_users: 37,
        });
        let want = ServiceCounts {
            received: 19,
            fee_bearing: 22,
            paid_online: 28,
            digitized: 36,
            result_postal: 42,
            postal_users: 50,
        };
        assert_eq!(service, want);
    }

    #[test]
    fn ratios_other_than_one_show_which_amount_is_divided() {
        let b = BudgetTotals { allocated: 1_000, committed: 0, disbursed: 0, saved: 0, disclosed: 250 };
        assert_eq!(b.disclosure(), Some(0.25));
        let s = StaffingTotals { staff_quota: 80, staff_filled: 60, ..Default::default() };
        assert_eq!(s.fill(), Some(0.75));
        assert_eq!(StaffingTotals::default().fill(), None);
    }
}
