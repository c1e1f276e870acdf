//! Reading a request for the plant's own names and its numbers: machines (by id, name or a
//! description such as `2号磨床`, `三号车床`, `lathe 3`), products, process parameters, signals,
//! durations (`6 hours`, `半天`, `一个班`) and plain numbers. The planner fills a tool's
//! arguments from these; the intent model sees the request with each of them replaced by a
//! placeholder, so that it learns how people ask, not which names a plant has.
//!
//! Invariant: pure text work over a [`Vocabulary`]; no I/O, no model.

use crate::tools::{OrderFilter, Vocabulary, WorkKind};
use regex::Regex;
use std::sync::LazyLock;

/// What a stretch of a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Machine,
    Product,
    Param,
    Signal,
    Duration,
    Number,
}

impl Slot {
    /// The placeholder the intent model sees in place of the mention.
    pub(crate) fn placeholder(self) -> char {
        match self {
            Slot::Machine => 'Ⓜ',
            Slot::Product => 'Ⓟ',
            Slot::Param => 'Ⓐ',
            Slot::Signal => 'Ⓢ',
            Slot::Duration => 'Ⓗ',
            Slot::Number => 'Ⓝ',
        }
    }
}

/// One name or number found in a request: byte range in the folded text, what it is, the id it
/// names (machines, products, parameters, signals) and its value (durations in hours, numbers).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mention {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) slot: Slot,
    pub(crate) id: String,
    pub(crate) value: f64,
}

/// A request read against a plant's vocabulary.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    /// Lower case, full-width forms folded to ASCII; the same number of characters as the
    /// request.
    pub(crate) folded: String,
    /// Non-overlapping, in order of position.
    pub(crate) mentions: Vec<Mention>,
}

fn re(pattern: &str) -> Regex {
    // The patterns are constants of this file; a typo fails every test at once.
    Regex::new(pattern).unwrap_or_else(|e| panic!("planner pattern {pattern}: {e}"))
}

/// Lower case (where a character lowers to one character), full-width ASCII forms and the
/// ideographic space folded to ASCII.
pub(crate) fn fold(text: &str) -> String {
    text.chars()
        .map(|c| {
            let c = match c as u32 {
                0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
                0x3000 => ' ',
                _ => c,
            };
            let mut lower = c.to_lowercase();
            match (lower.next(), lower.next()) {
                (Some(l), None) => l,
                _ => c,
            }
        })
        .collect()
}

/// Whether `text[start..end]` stands alone: no ASCII letter or digit right before or after.
fn bounded(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(|c| c.is_ascii_alphanumeric())
        && !after.is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Every bounded occurrence of `needle` (folded) in `hay`, allowing an English plural.
fn occurrences(hay: &str, needle: &str, plural: bool) -> Vec<(usize, usize)> {
    if needle.is_empty() {
        return Vec::new();
    }
    let ascii_edges = (
        needle
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric()),
        needle
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric()),
    );
    let mut found = Vec::new();
    for (start, _) in hay.match_indices(needle) {
        let mut end = start + needle.len();
        if plural && ascii_edges.1 {
            for suffix in ["es", "s"] {
                if hay[end..].starts_with(suffix) && bounded(hay, start, end + suffix.len()) {
                    end += suffix.len();
                    break;
                }
            }
        }
        let before_ok = !ascii_edges.0
            || !hay[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric());
        // A word may run into a number (`切削速度200`, `feed0.3`), not into more letters; a
        // name ending in a digit may not run into more digits.
        let last_is_digit = needle.ends_with(|c: char| c.is_ascii_digit());
        let after_ok = !ascii_edges.1
            || !hay[end..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || (last_is_digit && c.is_ascii_digit()));
        if before_ok && after_ok {
            found.push((start, end));
        }
    }
    found
}

const ZH_DIGITS: &str = "零〇一二两三四五六七八九十百千万";

/// The value of a Chinese numeral such as 三, 十二, 两百, 一千五百, 一千二 (colloquial 1 200).
pub(crate) fn zh_number(s: &str) -> Option<f64> {
    let digit = |c: char| -> Option<u64> {
        Some(match c {
            '零' | '〇' => 0,
            '一' => 1,
            '二' | '两' => 2,
            '三' => 3,
            '四' => 4,
            '五' => 5,
            '六' => 6,
            '七' => 7,
            '八' => 8,
            '九' => 9,
            _ => return None,
        })
    };
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return None;
    }
    // Digits only (二零二四): positional.
    if chars.len() > 1 && chars.iter().all(|c| digit(*c).is_some()) {
        let mut v = 0u64;
        for c in &chars {
            v = v.checked_mul(10)?.checked_add(digit(*c)?)?;
        }
        return Some(v as f64);
    }
    let (mut total, mut section, mut number) = (0u64, 0u64, 0u64);
    let mut last_unit = 0u64;
    let mut after_unit = false;
    for &c in &chars {
        if let Some(d) = digit(c) {
            number = d;
            after_unit = false;
            continue;
        }
        let unit = match c {
            '十' => 10,
            '百' => 100,
            '千' => 1000,
            '万' => 10_000,
            _ => return None,
        };
        if unit == 10_000 {
            total += (section + number).max(1) * unit;
            section = 0;
        } else {
            let n = if number == 0 { 1 } else { number };
            section += n * unit;
        }
        number = 0;
        last_unit = unit;
        after_unit = true;
    }
    // 一千二 is 1 200, 两万五 is 25 000: a last digit right after a unit counts in the next
    // lower unit (a zero, 一千零二, keeps it a digit).
    if number > 0 && !after_unit && last_unit >= 100 && chars.len() >= 2 {
        let prev = chars[chars.len() - 2];
        if matches!(prev, '百' | '千' | '万') {
            number *= last_unit / 10;
        }
    }
    Some((total + section + number) as f64)
}

fn number_value(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.chars().all(|c| ZH_DIGITS.contains(c)) {
        return zh_number(s);
    }
    let english = match s {
        "a" | "an" | "one" => Some(1.0),
        "two" | "a couple of" => Some(2.0),
        "three" | "a few" => Some(3.0),
        "four" => Some(4.0),
        "five" => Some(5.0),
        "six" => Some(6.0),
        "seven" => Some(7.0),
        "eight" => Some(8.0),
        "nine" => Some(9.0),
        "ten" => Some(10.0),
        "eleven" => Some(11.0),
        "twelve" => Some(12.0),
        "fifteen" => Some(15.0),
        "twenty" => Some(20.0),
        "twenty-four" | "twenty four" => Some(24.0),
        "thirty" => Some(30.0),
        "thirty-six" | "thirty six" => Some(36.0),
        "forty-eight" | "forty eight" => Some(48.0),
        "half a" | "half an" | "half" => Some(0.5),
        _ => None,
    };
    english.or_else(|| s.replace(',', "").parse().ok())
}

/// Kinds of machine people name by a word and a number, and how to find them in a vocabulary:
/// (English words, Chinese words, id prefixes, words of the English name).
type Kind = (
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);
const KINDS: &[Kind] = &[
    (
        &["cnc lathe", "lathe", "turning centre", "turning center"],
        &["数控车床", "车削中心", "车床"],
        &["turn", "lathe"],
        &["lathe"],
    ),
    (
        &["cylindrical grinder", "grinding machine", "grinder"],
        &["外圆磨床", "外圆磨", "磨床", "磨机"],
        &["grind"],
        &["grinder"],
    ),
    (
        &[
            "vertical machining centre",
            "machining centre",
            "machining center",
            "milling machine",
            "vmc",
        ],
        &["立式加工中心", "加工中心", "立加", "铣床"],
        &["mill", "vmc"],
        &["machining centre", "machining center"],
    ),
    (
        &["gear hobber", "hobbing machine", "hobber"],
        &["滚齿机"],
        &[],
        &["hobber", "hobbing machine"],
    ),
    (
        &["sealed-quench furnace", "heat-treatment furnace", "furnace"],
        &[
            "密封箱式炉",
            "热处理炉",
            "渗碳炉",
            "淬火炉",
            "多用炉",
            "炉子",
            "炉",
        ],
        &["ht", "fur"],
        &["furnace"],
    ),
    (
        &["coordinate measuring machine", "cmm"],
        &["三坐标测量机", "三坐标"],
        &["cmm"],
        &["cmm", "coordinate measuring"],
    ),
    (
        &["gauging bench", "gauge bench"],
        &["检测台", "量仪台"],
        &[],
        &["gauging bench", "gauge bench"],
    ),
    (
        &["press-fit station", "press"],
        &["压装机", "压机"],
        &["assy"],
        &["press"],
    ),
    (
        &["loom"],
        &["喷气织机", "剑杆织机", "织机"],
        &["loom"],
        &["loom"],
    ),
    (&["warper"], &["整经机"], &["warp"], &["warper"]),
    (
        &["dyeing machine", "dyer"],
        &["染色机", "染缸"],
        &["dye"],
        &["dyeing"],
    ),
    (&["stenter"], &["定型机"], &["fin"], &["stenter"]),
    (&["smt line"], &["贴片线"], &["smt"], &["smt"]),
    (
        &["reflow oven", "reflow"],
        &["回流焊", "回流炉"],
        &["rfl"],
        &["reflow"],
    ),
    (
        &["functional test rack", "test rack"],
        &["功能测试架", "测试架"],
        &["fct"],
        &["test rack"],
    ),
];

fn alternation(words: impl Iterator<Item = &'static str>) -> String {
    let mut words: Vec<&str> = words.collect();
    words.sort_by_key(|w| std::cmp::Reverse(w.len()));
    words
        .iter()
        .map(|w| regex::escape(w))
        .collect::<Vec<_>>()
        .join("|")
}

static EN_KIND: LazyLock<String> =
    LazyLock::new(|| alternation(KINDS.iter().flat_map(|k| k.0.iter().copied())));
static ZH_KIND: LazyLock<String> =
    LazyLock::new(|| alternation(KINDS.iter().flat_map(|k| k.1.iter().copied())));
const EN_SMALL: &str = r"\d{1,3}|one|two|three|four|five|six";
const ZH_NUM: &str = r"\d{1,3}|[零〇一二两三四五六七八九十]{1,3}";

static ID: LazyLock<Regex> = LazyLock::new(|| re(r"([a-z]+)[\s_-]?0*(\d{1,3})"));
/// `lathe 3`, `grinder #2`, `furnace no. 1`.
static EN_KIND_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"({})s?\s*(?:#|no\.?|number|-)?\s*({EN_SMALL})",
        *EN_KIND
    ))
});
/// `#2 lathe`, `no. 2 grinder`, `the second lathe`.
static EN_NUMBER_KIND: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?:(?:#|no\.?\s*|number\s*)(\d{{1,3}})|(first|second|third|fourth|fifth|sixth|1st|2nd|3rd|4th|5th|6th))\s+({})",
        *EN_KIND
    ))
});
/// `the hobber`: a kind with one machine of it; `the old lathe`: the one old one.
static EN_THE_KIND: LazyLock<Regex> =
    LazyLock::new(|| re(&format!(r"(?:the|that|our)\s+(old\s+)?({})", *EN_KIND)));
/// 老车床, 旧磨床: the one old machine of a kind.
static ZH_OLD_KIND: LazyLock<Regex> = LazyLock::new(|| re(&format!(r"(?:老|旧)({})", *ZH_KIND)));
/// `2号磨床`, `三号车床`, `1#炉`, `第二台车床`.
static ZH_NUMBER_KIND: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?:第\s*({ZH_NUM})\s*台|(?:#\s*)?({ZH_NUM})\s*(?:号|#)?\s*(?:机台|设备)?)\s*({})",
        *ZH_KIND
    ))
});
/// `车床3`, `加工中心2号`, `炉子1`.
static ZH_KIND_NUMBER: LazyLock<Regex> =
    LazyLock::new(|| re(&format!(r"({})\s*({ZH_NUM})\s*(?:号|#)?", *ZH_KIND)));
static ZH_KIND_ALONE: LazyLock<Regex> = LazyLock::new(|| re(&format!(r"({})", *ZH_KIND)));

static EN_DURATION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(\d+(?:\.\d+)?|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty[- ]four|twenty|thirty[- ]six|thirty|forty[- ]eight|a couple of|a few|half an?|half)\s*-?\s*(hours?|hrs?|h|minutes?|mins?|days?|shifts?|weeks?)",
    )
});
static EN_WHOLE_DURATION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:the whole|the entire|a whole|a full|the full|all|the last|the past|last|past|previous|the previous)\s+(hour|shift|day|week|night)|(overnight)",
    )
});
static ZH_DURATION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(\d+(?:\.\d+)?|[零〇一二两三四五六七八九十百]+)?\s*(?:个|整)?\s*(半)?\s*(个)?\s*(小时|钟头|分钟|天|个班|班|周|星期|礼拜|上午|下午|晚上|夜)",
    )
});
static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(\s*万)?|([零〇一二两三四五六七八九十百千万]+)(?:件|个|套|只|台|根|块|批|pcs)",
    )
});
static QUANTITY_UNIT: LazyLock<Regex> =
    LazyLock::new(|| re(r"^\s*(?:units?|pcs|pieces?|parts?|sets?|件|个|套|只|台|根|块)"));
static TARGET: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:\bto|=|:|改为|改成|调到|调至|调整为|调整到|调成|设为|设成|设置为|设置成|设定为|设定成|提高到|提到|提升到|降低到|降到|减到|减小到|升到|加到|增加到|变成|定为|定在|为|到)\s*$",
    )
});

fn kind_candidates<'v>(kind: &Kind, vocab: &'v Vocabulary) -> Vec<&'v str> {
    vocab
        .machines
        .iter()
        .filter(|(id, name, _)| {
            let letters: String = id
                .chars()
                .filter(char::is_ascii_alphabetic)
                .collect::<String>()
                .to_lowercase();
            // The name without its remark: "Gauging bench (slower than the CMM)" is no CMM.
            let name = name.to_lowercase();
            let name = name.split(" (").next().unwrap_or(&name);
            kind.2.contains(&letters.as_str()) || kind.3.iter().any(|w| name.contains(w))
        })
        .map(|(id, _, _)| id.as_str())
        .collect()
}

fn kind_of(word: &str, english: bool) -> Option<&'static Kind> {
    KINDS.iter().find(|k| {
        if english {
            k.0.contains(&word)
        } else {
            k.1.contains(&word)
        }
    })
}

fn id_number(id: &str) -> Option<u32> {
    id.chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

/// The machine of `kind` numbered `number`, or the one machine of the kind when no number is
/// given.
fn resolve_kind(kind: &Kind, number: Option<f64>, vocab: &Vocabulary) -> Option<String> {
    resolve_among(kind_candidates(kind, vocab), number)
}

/// The one machine of `kind` whose name calls it old.
fn resolve_old(kind: &Kind, vocab: &Vocabulary) -> Option<String> {
    let old: Vec<&str> = kind_candidates(kind, vocab)
        .into_iter()
        .filter(|id| {
            vocab
                .machines
                .iter()
                .any(|(i, name, _)| i == id && name.to_lowercase().starts_with("old "))
        })
        .collect();
    resolve_among(old, None)
}

fn resolve_among(candidates: Vec<&str>, number: Option<f64>) -> Option<String> {
    match number {
        Some(n) => candidates
            .iter()
            .find(|id| id_number(id).map(f64::from) == Some(n))
            .map(|id| (*id).to_owned()),
        None => (candidates.len() == 1).then(|| candidates[0].to_owned()),
    }
}

fn ordinal(word: &str) -> Option<f64> {
    Some(match word {
        "first" | "1st" => 1.0,
        "second" | "2nd" => 2.0,
        "third" | "3rd" => 3.0,
        "fourth" | "4th" => 4.0,
        "fifth" | "5th" => 5.0,
        "sixth" | "6th" => 6.0,
        _ => return None,
    })
}

/// Words people use for parameters, in both languages, beyond the names themselves.
const PARAM_WORDS: &[(&str, &[&str])] = &[
    (
        "cutting_speed",
        &[
            "cutting speed",
            "surface speed",
            "切削速度",
            "切削线速度",
            "线速度",
        ],
    ),
    (
        "feed",
        &[
            "feed rate",
            "feedrate",
            "feed",
            "进给量",
            "进给速度",
            "进给",
        ],
    ),
    (
        "hob_speed",
        &[
            "hob speed",
            "hobbing speed",
            "滚刀速度",
            "滚刀转速",
            "滚齿速度",
        ],
    ),
    ("axial_feed", &["axial feed", "轴向进给量", "轴向进给"]),
    (
        "wheel_speed",
        &["wheel speed", "砂轮线速度", "砂轮速度", "砂轮转速"],
    ),
    (
        "plunge_infeed",
        &[
            "plunge infeed",
            "plunge feed",
            "infeed",
            "切入进给",
            "径向进给",
            "进刀量",
        ],
    ),
    (
        "carburising_temp",
        &[
            "carburising temperature",
            "carburizing temperature",
            "carburising temp",
            "carburizing temp",
            "渗碳温度",
        ],
    ),
    (
        "carbon_potential",
        &["carbon potential", "carbon level", "碳势", "碳位"],
    ),
    (
        "tempering_temp",
        &["tempering temperature", "tempering temp", "回火温度"],
    ),
    (
        "quench_temp",
        &[
            "quench temperature",
            "quenching temperature",
            "quench temp",
            "淬火温度",
        ],
    ),
];

const SIGNAL_WORDS: &[(&str, &[&str])] = &[
    (
        "vibration_mm_s",
        &[
            "vibrations",
            "vibration",
            "vibrating",
            "vibrates",
            "振动",
            "震动",
            "抖动",
        ],
    ),
    (
        "temperature_rise_c",
        &[
            "temperature rise",
            "temperatures",
            "temperature",
            "temp rise",
            "temp",
            "how hot",
            "running hot",
            "多少度",
            "几度",
            "热不热",
            "烫不烫",
            "温度",
            "温升",
            "炉温",
            "发热",
        ],
    ),
    (
        "current_a",
        &[
            "spindle load",
            "amperage",
            "current",
            "amps",
            "电流",
            "主轴负载",
            "负载",
        ],
    ),
];

/// Words after "current" that make it mean "now", not amperes.
const NOT_AMPERES: &[&str] = &[
    "status",
    "state",
    "schedule",
    "plan",
    "oee",
    "orders",
    "order",
    "shift",
    "situation",
    "kpi",
    "kpis",
    "output",
    "backlog",
    "job",
    "jobs",
    "queue",
    "week",
    "day",
    "month",
    "rate",
    "scrap",
    "yield",
    "delivery",
    "lead",
    "production",
    "performance",
    "numbers",
    "figures",
    "level",
    "plant",
    "machine",
    "setting",
    "settings",
    "set-point",
    "setpoint",
    "value",
    "values",
    "parameter",
    "parameters",
    "version",
    "plans",
    "load",
    "workload",
    "wip",
    "availability",
    "energy",
    "throughput",
    "health",
    "condition",
    "anomalies",
    "alarms",
    "situation",
    "time",
    "hour",
];

impl Reading {
    /// Reads `request` against `vocab`.
    pub(crate) fn new(request: &str, vocab: &Vocabulary) -> Reading {
        let folded = fold(request);
        let mut r = Reading {
            folded,
            mentions: Vec::new(),
        };
        r.find_machines(vocab);
        r.find_products(vocab);
        r.find_params(vocab);
        r.find_signals(vocab);
        r.find_durations();
        r.find_numbers();
        r.mentions.sort_by_key(|m| m.start);
        r
    }

    fn free(&self, start: usize, end: usize) -> bool {
        start < end
            && self
                .mentions
                .iter()
                .all(|m| end <= m.start || start >= m.end)
    }

    fn add(&mut self, start: usize, end: usize, slot: Slot, id: &str, value: f64) -> bool {
        if !self.free(start, end) {
            return false;
        }
        self.mentions.push(Mention {
            start,
            end,
            slot,
            id: id.to_owned(),
            value,
        });
        true
    }

    fn find_machines(&mut self, vocab: &Vocabulary) {
        if vocab.machines.is_empty() {
            return;
        }
        let text = self.folded.clone();
        // Full names first (they may hold a kind and a number), then ids, then descriptions.
        let mut names: Vec<(String, &str)> = Vec::new();
        for (id, name, zh) in &vocab.machines {
            let name = fold(name);
            if let Some(short) = name.split(" (").next()
                && short != name
                && short.len() >= 3
            {
                names.push((short.trim().to_owned(), id));
            }
            names.push((name, id));
            if let Some(z) = zh {
                names.push((fold(z), id));
            }
        }
        names.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
        for (name, id) in &names {
            if name.len() < 3 {
                continue;
            }
            for (s, e) in occurrences(&text, name, true) {
                self.add(s, e, Slot::Machine, id, 0.0);
            }
        }
        for cap in ID.captures_iter(&text) {
            let m = cap.get(0).expect("whole match");
            if !bounded(&text, m.start(), m.end()) {
                continue;
            }
            let prefix = &cap[1];
            let number: u32 = cap[2].parse().unwrap_or(u32::MAX);
            let found = vocab.machines.iter().find(|(id, _, _)| {
                let letters: String = id
                    .chars()
                    .filter(char::is_ascii_alphabetic)
                    .collect::<String>()
                    .to_lowercase();
                letters == prefix && id_number(id) == Some(number)
            });
            if let Some((id, _, _)) = found {
                self.add(m.start(), m.end(), Slot::Machine, id, 0.0);
            }
        }
        let mut hits: Vec<(usize, usize, String)> = Vec::new();
        for cap in EN_KIND_NUMBER.captures_iter(&text) {
            let m = cap.get(0).expect("whole match");
            if !bounded(&text, m.start(), m.end()) {
                continue;
            }
            if let (Some(kind), Some(n)) = (kind_of(&cap[1], true), number_value(&cap[2]))
                && let Some(id) = resolve_kind(kind, Some(n), vocab)
            {
                hits.push((m.start(), m.end(), id));
            }
        }
        for cap in EN_NUMBER_KIND.captures_iter(&text) {
            let m = cap.get(0).expect("whole match");
            if !bounded(&text, m.start(), m.end()) {
                continue;
            }
            let n = cap
                .get(1)
                .and_then(|n| number_value(n.as_str()))
                .or_else(|| cap.get(2).and_then(|o| ordinal(o.as_str())));
            if let (Some(kind), Some(n)) = (kind_of(&cap[3], true), n)
                && let Some(id) = resolve_kind(kind, Some(n), vocab)
            {
                hits.push((m.start(), m.end(), id));
            }
        }
        for cap in ZH_NUMBER_KIND.captures_iter(&text) {
            let m = cap.get(0).expect("whole match");
            let n = cap
                .get(1)
                .or(cap.get(2))
                .and_then(|n| number_value(n.as_str()));
            if let (Some(kind), Some(n)) = (kind_of(&cap[3], false), n)
                && let Some(id) = resolve_kind(kind, Some(n), vocab)
            {
                hits.push((m.start(), m.end(), id));
            }
        }
        for cap in ZH_KIND_NUMBER.captures_iter(&text) {
            let m = cap.get(0).expect("whole match");
            // `车床3` but not `车床3.5`, and `车床三号` but not `车床一直报警`: a Chinese
            // numeral needs its 号 (or nothing Chinese) after it.
            let next = text[m.end()..].chars().next();
            if next.is_some_and(|c| c.is_ascii_digit() || c == '.') {
                continue;
            }
            let ends_with_mark = m.as_str().ends_with('号') || m.as_str().ends_with('#');
            if !cap[2].starts_with(|c: char| c.is_ascii_digit())
                && !ends_with_mark
                && next.is_some_and(is_cjk)
            {
                continue;
            }
            if let (Some(kind), Some(n)) = (kind_of(&cap[1], false), number_value(&cap[2]))
                && let Some(id) = resolve_kind(kind, Some(n), vocab)
            {
                hits.push((m.start(), m.end(), id));
            }
        }
        for (s, e, id) in hits {
            self.add(s, e, Slot::Machine, &id, 0.0);
        }
        for cap in EN_THE_KIND.captures_iter(&text) {
            let (m, word) = (cap.get(0).expect("whole match"), cap.get(2).expect("kind"));
            if !bounded(&text, m.start(), m.end()) {
                continue;
            }
            let Some(kind) = kind_of(word.as_str(), true) else {
                continue;
            };
            match cap.get(1) {
                Some(old) => {
                    if let Some(id) = resolve_old(kind, vocab) {
                        self.add(old.start(), word.end(), Slot::Machine, &id, 0.0);
                    }
                }
                None => {
                    if let Some(id) = resolve_kind(kind, None, vocab) {
                        self.add(word.start(), word.end(), Slot::Machine, &id, 0.0);
                    }
                }
            }
        }
        for cap in ZH_OLD_KIND.captures_iter(&text) {
            let (m, word) = (cap.get(0).expect("whole match"), cap.get(1).expect("kind"));
            if let Some(kind) = kind_of(word.as_str(), false)
                && let Some(id) = resolve_old(kind, vocab)
            {
                self.add(m.start(), m.end(), Slot::Machine, &id, 0.0);
            }
        }
        for m in ZH_KIND_ALONE.find_iter(&text) {
            // 炉 alone is too short to trust (开炉, 炉温).
            if m.as_str().chars().count() < 2 {
                continue;
            }
            if let Some(kind) = kind_of(m.as_str(), false)
                && let Some(id) = resolve_kind(kind, None, vocab)
            {
                self.add(m.start(), m.end(), Slot::Machine, &id, 0.0);
            }
        }
    }

    fn find_products(&mut self, vocab: &Vocabulary) {
        let text = self.folded.clone();
        let mut names: Vec<(String, &str)> = Vec::new();
        for (id, name, zh) in &vocab.products {
            names.push((fold(id), id));
            let name = fold(name);
            let name = name.split(" (").next().unwrap_or(&name).trim().to_owned();
            names.push((name, id));
            if let Some(z) = zh {
                let z = fold(z);
                names.push((z.split('(').next().unwrap_or(&z).trim().to_owned(), id));
                names.push((z, id));
            }
        }
        // Shorter names people use: "input shaft" for "gearbox input shaft", 法兰 for 输出法兰,
        // "hubs" for "wheel hub", where no other product shares them.
        let mut aliases: Vec<(String, &str)> = Vec::new();
        for (id, name, zh) in &vocab.products {
            let name = fold(name);
            let name = name.split(" (").next().unwrap_or(&name).trim().to_owned();
            let words: Vec<&str> = name.split(' ').collect();
            if words.len() >= 3 {
                aliases.push((words[1..].join(" "), id));
            }
            if words.len() >= 2 {
                let last = words[words.len() - 1];
                if last.len() >= 3 && !["assembly", "component", "part", "parts"].contains(&last) {
                    aliases.push((last.to_owned(), id));
                }
            }
            if let Some(z) = zh {
                let z = fold(z);
                let chars: Vec<char> = z.split('(').next().unwrap_or(&z).trim().chars().collect();
                if chars.len() >= 4 {
                    aliases.push((chars[chars.len() - 3..].iter().collect(), id));
                }
                if chars.len() >= 3 {
                    aliases.push((chars[chars.len() - 2..].iter().collect(), id));
                }
            }
        }
        let unique: Vec<(String, &str)> = aliases
            .iter()
            .filter(|(a, id)| {
                aliases.iter().all(|(b, other)| b != a || other == id)
                    && names.iter().all(|(n, other)| n != a || other == id)
            })
            .cloned()
            .collect();
        names.extend(unique);
        names.sort_by_key(|(n, _)| std::cmp::Reverse(n.chars().count()));
        for (name, id) in &names {
            if name.chars().count() < 2 {
                continue;
            }
            for (s, e) in occurrences(&text, name, true) {
                self.add(s, e, Slot::Product, id, 0.0);
            }
        }
    }

    fn find_params(&mut self, vocab: &Vocabulary) {
        let text = self.folded.clone();
        let mut words: Vec<(String, &str)> = Vec::new();
        for p in &vocab.params {
            words.push((p.to_lowercase(), p));
            words.push((p.to_lowercase().replace('_', " "), p));
        }
        for (name, ws) in PARAM_WORDS {
            if let Some(p) = vocab.params.iter().find(|p| p == name) {
                words.extend(ws.iter().map(|w| ((*w).to_owned(), p.as_str())));
            }
        }
        words.sort_by_key(|(w, _)| std::cmp::Reverse(w.len()));
        for (w, id) in &words {
            for (s, e) in occurrences(&text, w, false) {
                self.add(s, e, Slot::Param, id, 0.0);
            }
        }
    }

    fn find_signals(&mut self, vocab: &Vocabulary) {
        let text = self.folded.clone();
        let mut words: Vec<(String, String)> = vocab
            .signals
            .iter()
            .map(|s| (s.to_lowercase(), s.clone()))
            .collect();
        for (name, ws) in SIGNAL_WORDS {
            words.extend(ws.iter().map(|w| ((*w).to_owned(), (*name).to_owned())));
        }
        words.sort_by_key(|(w, _)| std::cmp::Reverse(w.len()));
        for (w, id) in &words {
            for (s, e) in occurrences(&text, w, false) {
                if w == "current" {
                    let next = text[e..]
                        .split(|c: char| !c.is_alphanumeric() && c != '-')
                        .find(|w| !w.is_empty())
                        .unwrap_or("");
                    if NOT_AMPERES.contains(&next) {
                        continue;
                    }
                }
                self.add(s, e, Slot::Signal, id, 0.0);
            }
        }
    }

    fn find_durations(&mut self) {
        let text = self.folded.clone();
        for cap in EN_DURATION.captures_iter(&text) {
            let m = cap.get(0).expect("whole match");
            if !bounded(&text, m.start(), m.end()) {
                continue;
            }
            let Some(n) = number_value(&cap[1]) else {
                continue;
            };
            let unit = &cap[2];
            let hours = match unit.trim_end_matches('s') {
                "hour" | "hr" | "h" => n,
                "minute" | "min" => n / 60.0,
                "day" => n * 24.0,
                "shift" => n * 8.0,
                "week" => n * 168.0,
                _ => continue,
            };
            // "half a day" is 12 hours, not half an hour.
            let hours = if cap[1].starts_with("half") && unit != "h" {
                match unit.trim_end_matches('s') {
                    "hour" | "hr" => 0.5,
                    "minute" | "min" => 0.5 / 60.0,
                    "day" => 12.0,
                    "shift" => 4.0,
                    "week" => 84.0,
                    _ => hours,
                }
            } else {
                hours
            };
            self.add(m.start(), m.end(), Slot::Duration, "", hours);
        }
        for cap in EN_WHOLE_DURATION.captures_iter(&text) {
            let m = cap.get(0).expect("whole match");
            if !bounded(&text, m.start(), m.end()) {
                continue;
            }
            let unit = cap.get(1).or(cap.get(2)).map_or("", |u| u.as_str());
            let hours = match unit {
                "hour" => 1.0,
                "shift" => 8.0,
                "day" => 24.0,
                "week" => 168.0,
                "night" | "overnight" => 12.0,
                _ => continue,
            };
            self.add(m.start(), m.end(), Slot::Duration, "", hours);
        }
        for cap in ZH_DURATION.captures_iter(&text) {
            let m = cap.get(0).expect("whole match");
            let half = cap.get(2).is_some();
            let n = cap.get(1).and_then(|n| number_value(n.as_str()));
            let n = match (n, half) {
                (Some(n), true) => n + 0.5,
                (Some(n), false) => n,
                (None, true) => 0.5,
                (None, false) => continue,
            };
            // 第二天 is a date, 下一班 the next shift: neither is a duration.
            if text[..m.start()].ends_with('第')
                || (cap[4].ends_with('班') && text[..m.start()].ends_with('下'))
            {
                continue;
            }
            let hours = match &cap[4] {
                "小时" | "钟头" => n,
                "分钟" => n / 60.0,
                "天" => n * 24.0,
                "个班" | "班" => n * 8.0,
                "周" | "星期" | "礼拜" => n * 168.0,
                "上午" | "下午" => n * 4.0,
                _ => n * 12.0,
            };
            self.add(m.start(), m.end(), Slot::Duration, "", hours);
        }
    }

    fn find_numbers(&mut self) {
        let text = self.folded.clone();
        for cap in NUMBER.captures_iter(&text) {
            if let Some(digits) = cap.get(1) {
                // Digits glued to letters (an alarm code E23, an unknown id) are numbers too,
                // but the whole run of digits, never part of it.
                let Some(mut v) = number_value(digits.as_str()) else {
                    continue;
                };
                let mut end = digits.end();
                if let Some(wan) = cap.get(2) {
                    v *= 10_000.0;
                    end = wan.end();
                }
                let start = if text[..digits.start()].ends_with('-')
                    && !text[..digits.start() - 1]
                        .chars()
                        .next_back()
                        .is_some_and(char::is_alphanumeric)
                {
                    v = -v;
                    digits.start() - 1
                } else {
                    digits.start()
                };
                self.add(start, end, Slot::Number, "", v);
            } else if let Some(zh) = cap.get(3) {
                if zh.as_str() == "一" {
                    continue;
                }
                if let Some(v) = zh_number(zh.as_str()) {
                    self.add(zh.start(), zh.end(), Slot::Number, "", v);
                }
            }
        }
    }

    fn first(&self, slot: Slot) -> Option<&Mention> {
        self.mentions.iter().find(|m| m.slot == slot)
    }

    pub(crate) fn machine(&self) -> Option<String> {
        self.first(Slot::Machine).map(|m| m.id.clone())
    }

    pub(crate) fn product(&self) -> Option<String> {
        self.first(Slot::Product).map(|m| m.id.clone())
    }

    pub(crate) fn param(&self) -> Option<String> {
        self.first(Slot::Param).map(|m| m.id.clone())
    }

    pub(crate) fn signal(&self) -> Option<String> {
        self.first(Slot::Signal).map(|m| m.id.clone())
    }

    pub(crate) fn hours(&self) -> Option<f64> {
        self.first(Slot::Duration).map(|m| m.value)
    }

    /// Whether the request names anything of the plant's.
    pub(crate) fn names_something(&self) -> bool {
        self.mentions.iter().any(|m| {
            matches!(
                m.slot,
                Slot::Machine | Slot::Product | Slot::Param | Slot::Signal
            )
        })
    }

    /// How many units: a number with a unit (`500 件`, `200 pcs`), else the first positive
    /// whole number.
    pub(crate) fn quantity(&self) -> Option<u32> {
        let numbers = || self.mentions.iter().filter(|m| m.slot == Slot::Number);
        let whole = |v: f64| (v >= 1.0 && v.fract() == 0.0 && v <= 1e9).then_some(v as u32);
        numbers()
            .find(|m| QUANTITY_UNIT.is_match(&self.folded[m.end..]))
            .and_then(|m| whole(m.value))
            .or_else(|| numbers().find_map(|m| whole(m.value)))
    }

    /// The value a set-point request asks for: the number after "to", 调到, 改为 …, else the
    /// last number.
    pub(crate) fn target(&self) -> Option<f64> {
        let numbers: Vec<&Mention> = self
            .mentions
            .iter()
            .filter(|m| m.slot == Slot::Number)
            .collect();
        numbers
            .iter()
            .find(|m| TARGET.is_match(&self.folded[..m.start]))
            .or(numbers.last())
            .map(|m| m.value)
    }

    /// The request with each mention replaced by its placeholder, white space collapsed, and
    /// dropped next to Chinese text, so that `TURN-01 的振动` and `TURN-01的振动` read the same.
    pub(crate) fn normalised(&self) -> String {
        let mut out = String::with_capacity(self.folded.len());
        let mut at = 0;
        for m in &self.mentions {
            out.push_str(&self.folded[at..m.start]);
            out.push(m.slot.placeholder());
            at = m.end;
        }
        out.push_str(&self.folded[at..]);
        tidy(&out)
    }

    pub(crate) fn has_any(&self, words: &[&str]) -> bool {
        words.iter().any(|w| self.folded.contains(w))
    }

    pub(crate) fn order_filter(&self) -> OrderFilter {
        if self.has_any(&[
            "late",
            "overdue",
            "behind",
            "past due",
            "delayed",
            "slip",
            "miss",
            "won't make",
            "at risk",
            "延期",
            "逾期",
            "拖期",
            "迟交",
            "超期",
            "延误",
            "拖了",
            "晚了",
            "赶不上",
            "来不及",
            "脱期",
        ]) {
            OrderFilter::Late
        } else if self.has_any(&[
            "completed",
            "finished",
            "shipped",
            "delivered",
            "done",
            "closed",
            "已完成",
            "完成的",
            "做完",
            "已交",
            "交完",
            "已发货",
            "发完",
            "完工",
        ]) {
            OrderFilter::Completed
        } else if self.has_any(&[
            "all orders",
            "every order",
            "所有订单",
            "全部订单",
            "所有的订单",
        ]) && !self.has_any(&["open", "未完成", "没完成", "在制", "未交"])
        {
            OrderFilter::All
        } else {
            OrderFilter::Open
        }
    }

    pub(crate) fn work_kind(&self) -> WorkKind {
        if self.has_any(&[
            "repair",
            "fix",
            "corrective",
            "broken",
            "breakdown",
            "broke",
            "failed",
            "failure",
            "not working",
            "fault",
            "leak",
            "crash",
            "维修",
            "修理",
            "修一下",
            "抢修",
            "报修",
            "故障",
            "坏",
            "漏油",
            "修好",
        ]) {
            WorkKind::Corrective
        } else {
            WorkKind::Preventive
        }
    }
}

/// Whether `c` is one of the placeholders of [`Slot::placeholder`].
pub(crate) fn is_placeholder(c: char) -> bool {
    matches!(c, 'Ⓜ' | 'Ⓟ' | 'Ⓐ' | 'Ⓢ' | 'Ⓗ' | 'Ⓝ')
}

pub(crate) fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3000..=0x303F | 0x4E00..=0x9FFF | 0xFF00..=0xFFEF)
}

/// White space collapsed to single spaces, dropped where either side is Chinese.
pub(crate) fn tidy(text: &str) -> String {
    let chars: Vec<char> = text.trim().chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let before = out.chars().next_back();
            let after = chars.get(j).copied();
            if !before.is_some_and(is_cjk) && !after.is_some_and(is_cjk) {
                out.push(' ');
            }
            i = j;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}
