//! Decision 766/QĐ-TTg (2022) scoring of the service indicators an event stream
//! can give. The decision scores five groups out of 100 points (transparency 18,
//! progress 20, digitization 22, online service 22, satisfaction 18); each
//! indicator earns its full points when its rate reaches the target, otherwise
//! `rate x points / target`.
//!
//! Transparency (publication of procedures, answers to feedback) is not in the
//! event stream, so it is not scored: a score here is out of the 82 points the
//! stream can judge, and [`Score766::ratio`] is earned / available points of the
//! indicators that have data. How the 22 online-service points are split between
//! the online dossier and online payment rates, and the payment target, are this
//! project's choices (docs/KPIS.md); the other targets are the decision's.

use crate::kpi::{ratio, DossierDayCounts, ResolvedCounts, ServiceCounts};

/// One scored indicator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Indicator {
    /// Stable label value (`indicator` in /metrics).
    pub code: &'static str,
    /// Vietnamese name, for dashboards and the scorecard.
    pub name_vi: &'static str,
    /// The decision's group it scores in.
    pub group: &'static str,
    pub points: f64,
    pub target: f64,
}

pub const ON_TIME: Indicator = Indicator {
    code: "on_time",
    name_vi: "Tiến độ giải quyết (đúng hạn)",
    group: "progress",
    points: 20.0,
    target: 1.0,
};
pub const ONLINE_DOSSIER: Indicator = Indicator {
    code: "online_dossier",
    name_vi: "Hồ sơ trực tuyến",
    group: "online_service",
    points: 11.0,
    target: 0.5,
};
pub const ONLINE_PAYMENT: Indicator = Indicator {
    code: "online_payment",
    name_vi: "Thanh toán trực tuyến",
    group: "online_service",
    points: 11.0,
    target: 0.5,
};
pub const DIGITIZATION: Indicator = Indicator {
    code: "digitization",
    name_vi: "Số hoá hồ sơ, kết quả",
    group: "digitization",
    points: 22.0,
    target: 0.8,
};
pub const SATISFACTION: Indicator = Indicator {
    code: "satisfaction",
    name_vi: "Mức độ hài lòng (ước tính)",
    group: "satisfaction",
    points: 18.0,
    target: 0.9,
};

pub const INDICATORS: [Indicator; 5] = [ON_TIME, ONLINE_DOSSIER, ONLINE_PAYMENT, DIGITIZATION, SATISFACTION];

/// Points of the transparency group, which the event stream cannot judge.
pub const UNSCORED_POINTS: f64 = 18.0;

/// The decision's rule: full points at or above the target, else in proportion.
pub fn points(indicator: &Indicator, rate: f64) -> f64 {
    if rate >= indicator.target {
        indicator.points
    } else {
        rate.max(0.0) * indicator.points / indicator.target
    }
}

/// Satisfaction proxy (docs/KPIS.md): 1 - (late rate + complaint rate). parpulse has
/// no complaint events yet, so the complaint rate is 0 and the proxy is the share of
/// resolved dossiers that were not late.
pub fn satisfaction_proxy(resolved: &ResolvedCounts) -> Option<f64> {
    ratio(resolved.late, resolved.resolved).map(|late_rate| 1.0 - late_rate)
}

/// The rate of each indicator (None: no dossiers to judge it by).
pub fn rates(received: &DossierDayCounts, resolved: &ResolvedCounts, service: &ServiceCounts) -> [Option<f64>; 5] {
    [
        resolved.on_time_rate(),
        received.online_share(),
        service.online_payment_rate(),
        service.digitization_rate(),
        satisfaction_proxy(resolved),
    ]
}

/// A unit's (or group's, or the province's) score over one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Score766 {
    /// Points earned per indicator of [`INDICATORS`] (None: no data).
    pub points: [Option<f64>; 5],
}

impl Score766 {
    pub fn of(received: &DossierDayCounts, resolved: &ResolvedCounts, service: &ServiceCounts) -> Self {
        let rates = rates(received, resolved, service);
        let mut earned = [None; 5];
        for (slot, (indicator, rate)) in earned.iter_mut().zip(INDICATORS.iter().zip(rates)) {
            *slot = rate.map(|r| points(indicator, r));
        }
        Self { points: earned }
    }

    /// Points earned over the indicators with data.
    pub fn earned(&self) -> f64 {
        self.points.iter().flatten().sum()
    }

    /// Points available over the indicators with data.
    pub fn available(&self) -> f64 {
        INDICATORS.iter().zip(self.points).filter(|(_, p)| p.is_some()).map(|(i, _)| i.points).sum()
    }

    /// Earned / available (0..1): the band is read from this times 100.
    pub fn ratio(&self) -> Option<f64> {
        let available = self.available();
        (available > 0.0).then(|| self.earned() / available)
    }
}

/// The decision's bands of a score out of 100 (here: the ratio times 100).
pub fn band(score_percent: f64) -> &'static str {
    match score_percent {
        s if s >= 90.0 => "xuất sắc",
        s if s >= 80.0 => "tốt",
        s if s >= 70.0 => "khá",
        s if s >= 50.0 => "trung bình",
        _ => "yếu",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_points_at_or_above_target_else_in_proportion() {
        assert_eq!(points(&DIGITIZATION, 0.8), 22.0);
        assert_eq!(points(&DIGITIZATION, 0.95), 22.0);
        assert!((points(&DIGITIZATION, 0.4) - 11.0).abs() < 1e-9);
        assert!((points(&ON_TIME, 0.95) - 19.0).abs() < 1e-9);
        assert_eq!(points(&ONLINE_DOSSIER, 0.0), 0.0);
    }

    #[test]
    fn a_score_sums_the_indicators_with_data() {
        let received = DossierDayCounts { received: 100, received_online: 25, received_postal: 0 };
        let resolved = ResolvedCounts { resolved: 50, on_time: 45, late: 5, ..Default::default() };
        // No fee-bearing dossiers: the payment indicator has no data and is left out.
        let service =
            ServiceCounts { received: 100, fee_bearing: 0, paid_online: 0, digitized: 60, ..Default::default() };
        let score = Score766::of(&received, &resolved, &service);
        // on time 0.9 of 1.0 -> 18; online 0.25 of 0.5 -> 5.5; digitization 0.6 of 0.8 -> 16.5;
        // satisfaction 0.9 of 0.9 -> 18.
        let want = [Some(18.0), Some(5.5), None, Some(16.5), Some(18.0)];
        for (got, want) in score.points.iter().zip(want) {
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{got:?} vs {want:?}"),
                (g, w) => assert_eq!(*g, w),
            }
        }
        assert!((score.earned() - 58.0).abs() < 1e-9);
        assert_eq!(score.available(), 71.0);
        assert!((score.ratio().unwrap() - 58.0 / 71.0).abs() < 1e-9);
        assert_eq!(band(score.ratio().unwrap() * 100.0), "tốt");
        assert_eq!(band(75.0), "khá");
        assert_eq!(band(60.0), "trung bình");
    }

    #[test]
    fn the_points_of_the_scored_groups_add_up_to_the_decision_without_transparency() {
        let total: f64 = INDICATORS.iter().map(|i| i.points).sum();
        assert_eq!(total + UNSCORED_POINTS, 100.0);
    }

    #[test]
    fn no_dossiers_no_score() {
        let score = Score766::of(&Default::default(), &Default::default(), &Default::default());
        assert_eq!(score.ratio(), None);
        assert_eq!(band(95.0), "xuất sắc");
        assert_eq!(band(49.9), "yếu");
    }

    #[test]
    fn satisfaction_is_the_share_of_resolved_dossiers_not_late() {
        // Below the 0.9 target, so the points show the proxy itself: 1 - 4/10 = 0.6 -> 12 of 18.
        let resolved = ResolvedCounts { resolved: 10, on_time: 6, late: 4, ..Default::default() };
        let proxy = satisfaction_proxy(&resolved).expect("resolved dossiers");
        assert!((proxy - 0.6).abs() < 1e-12, "{proxy}");
        assert!((points(&SATISFACTION, proxy) - 12.0).abs() < 1e-9);
        assert_eq!(satisfaction_proxy(&ResolvedCounts::default()), None);
    }
}
