//! The intent model: which tool a request asks for, learnt from paraphrases rather than matched
//! by keywords.
//!
//! ```text
//!  data/intents.tsv ──expand──▶ sentences ──Reading::normalised──▶ "what if Ⓜ is down for Ⓗ"
//!  (templates, fillers)          (EN, ZH)   (names → placeholders)        │ char 1–4-grams,
//!                                                                          ▼ word 1–2-grams
//!                                               softmax regression (averaged SGD, fixed seed)
//! ```
//!
//! The training data are templates written for this plant's people — planners, maintenance
//! technicians, process engineers, in English and colloquial Chinese — with alternations
//! `[a|b|]` and slots `{M}` machine, `{P}` product, `{A}` parameter, `{S}` signal, `{H}` duration,
//! `{Q}` quantity, `{V}` value, filled from the `@` lines of the same file. The model is trained
//! at first use (tens of milliseconds in a release build), deterministically: on one platform
//! the same file gives the same weights bit for bit. Edit `data/intents.tsv` and rebuild to retrain; check
//! with `cargo run -p aifactory-agent --release --example intent_cv`, which reports k-fold
//! accuracy holding out whole templates.
//!
//! Invariant: no I/O, no clock, no randomness but a seeded generator; nothing downloaded.

use super::Lang;
use super::slots::Reading;
use crate::tools::{self, Vocabulary};
use std::collections::HashMap;
use std::sync::LazyLock;

/// The training templates and slot fillers, built in.
const DATA: &str = include_str!("../../data/intents.tsv");

/// What a request asks for: one of the tools, or nothing the planner knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Intent {
    PlantStatus,
    QueryKpis,
    QueryTelemetry,
    ListOrders,
    ShowSchedule,
    ExplainAnomaly,
    ScheduleWhatIf,
    QuoteDelivery,
    SearchManuals,
    DraftShiftReport,
    CreateWorkOrder,
    ChangeSetPoint,
    /// Small talk, other subjects, nonsense.
    Other,
}

impl Intent {
    pub const ALL: [Intent; 13] = [
        Intent::PlantStatus,
        Intent::QueryKpis,
        Intent::QueryTelemetry,
        Intent::ListOrders,
        Intent::ShowSchedule,
        Intent::ExplainAnomaly,
        Intent::ScheduleWhatIf,
        Intent::QuoteDelivery,
        Intent::SearchManuals,
        Intent::DraftShiftReport,
        Intent::CreateWorkOrder,
        Intent::ChangeSetPoint,
        Intent::Other,
    ];

    /// The tool's name, or `none`.
    pub fn name(self) -> &'static str {
        match self {
            Intent::PlantStatus => tools::PLANT_STATUS,
            Intent::QueryKpis => tools::QUERY_KPIS,
            Intent::QueryTelemetry => tools::QUERY_TELEMETRY,
            Intent::ListOrders => tools::LIST_ORDERS,
            Intent::ShowSchedule => tools::SHOW_SCHEDULE,
            Intent::ExplainAnomaly => tools::EXPLAIN_ANOMALY,
            Intent::ScheduleWhatIf => tools::SCHEDULE_WHAT_IF,
            Intent::QuoteDelivery => tools::QUOTE_DELIVERY,
            Intent::SearchManuals => tools::SEARCH_MANUALS,
            Intent::DraftShiftReport => tools::DRAFT_SHIFT_REPORT,
            Intent::CreateWorkOrder => tools::CREATE_WORK_ORDER,
            Intent::ChangeSetPoint => tools::CHANGE_SET_POINT,
            Intent::Other => "none",
        }
    }

    pub fn from_name(name: &str) -> Option<Intent> {
        Intent::ALL.into_iter().find(|i| i.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One line of the training file.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Line in `data/intents.tsv` (1-based).
    pub line: usize,
    pub intent: Intent,
    pub lang: Lang,
    pub text: String,
}

/// The templates and the slot fillers of the training file.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    pub templates: Vec<Template>,
    /// (slot letter, language) → surface forms.
    fillers: HashMap<(char, Lang), Vec<String>>,
}

fn lang_of(code: &str) -> Option<Lang> {
    match code {
        "en" => Some(Lang::En),
        "zh" => Some(Lang::Zh),
        _ => None,
    }
}

impl Corpus {
    /// The built-in training file.
    pub fn builtin() -> Corpus {
        // The file is a constant of the crate; a test parses it.
        Corpus::parse(DATA).unwrap_or_else(|e| panic!("data/intents.tsv: {e}"))
    }

    /// Parses lines `intent<TAB>lang<TAB>template` and `@slot<TAB>lang<TAB>filler`; `#` starts a
    /// comment line.
    pub fn parse(text: &str) -> Result<Corpus, String> {
        let mut corpus = Corpus::default();
        for (n, line) in text.lines().enumerate() {
            let line_no = n + 1;
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            let [head, lang, body] = cols[..] else {
                return Err(format!("line {line_no}: want 3 tab-separated columns"));
            };
            let lang = lang_of(lang).ok_or_else(|| format!("line {line_no}: language {lang}"))?;
            if let Some(slot) = head.strip_prefix('@') {
                let mut chars = slot.chars();
                let (Some(slot), None) = (chars.next(), chars.next()) else {
                    return Err(format!("line {line_no}: slot {head}"));
                };
                corpus
                    .fillers
                    .entry((slot, lang))
                    .or_default()
                    .push(body.to_owned());
                continue;
            }
            let intent =
                Intent::from_name(head).ok_or_else(|| format!("line {line_no}: intent {head}"))?;
            if body.matches('[').count() != body.matches(']').count() {
                return Err(format!("line {line_no}: unbalanced brackets"));
            }
            corpus.templates.push(Template {
                line: line_no,
                intent,
                lang,
                text: body.to_owned(),
            });
        }
        Ok(corpus)
    }

    /// The fillers of slot `slot` in `lang`.
    pub fn fillers(&self, slot: char, lang: Lang) -> &[String] {
        self.fillers.get(&(slot, lang)).map_or(&[], Vec::as_slice)
    }

    /// Up to `cap` sentences a template stands for: distinct choices of its alternations, each
    /// slot filled with a filler of the template's language, chosen by a generator seeded with
    /// the template's line.
    pub fn expand(&self, t: &Template, cap: usize) -> Vec<String> {
        let parts = split_template(&t.text);
        let combos: usize = parts
            .iter()
            .map(|p| match p {
                Part::Choice(options) => options.len().max(1),
                Part::Text(_) => 1,
            })
            .fold(1usize, |a, b| a.saturating_mul(b));
        let want = combos.min(cap).max(1);
        let mut rng = Rng::new(0x5EED_0000 ^ t.line as u64);
        let mut seen: Vec<Vec<usize>> = Vec::new();
        let mut out = Vec::new();
        let widest = parts
            .iter()
            .map(|p| match p {
                Part::Choice(options) => options.len(),
                Part::Text(_) => 1,
            })
            .max()
            .unwrap_or(1);
        let mut tries = 0;
        while out.len() < want && tries < want * 8 {
            tries += 1;
            // The first sentences walk every group's options in step (each option of each
            // group appears at least once when `cap` allows); the rest are drawn at random.
            let step = tries - 1;
            let picks: Vec<usize> = parts
                .iter()
                .map(|p| match p {
                    Part::Choice(options) if step < widest => step % options.len(),
                    Part::Choice(options) => rng.below(options.len()),
                    Part::Text(_) => 0,
                })
                .collect();
            if seen.contains(&picks) {
                continue;
            }
            let mut s = String::new();
            for (p, &k) in parts.iter().zip(&picks) {
                match p {
                    Part::Text(x) => s.push_str(x),
                    Part::Choice(options) => s.push_str(&options[k]),
                }
            }
            out.push(self.fill(&s, t.lang, &mut rng));
            seen.push(picks);
        }
        out
    }

    fn fill(&self, s: &str, lang: Lang, rng: &mut Rng) -> String {
        let mut out = String::with_capacity(s.len() + 16);
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '{' {
                let slot: String = chars.by_ref().take_while(|c| *c != '}').collect();
                let mut letters = slot.chars();
                if let (Some(letter), None) = (letters.next(), letters.next()) {
                    let options = self.fillers(letter, lang);
                    if !options.is_empty() {
                        // `{M}{S}` with Latin fillers reads `TURN-01 current`, not
                        // `TURN-01current`.
                        let filler = &options[rng.below(options.len())];
                        let joins = |a: Option<char>, b: Option<char>| {
                            a.is_some_and(|c| c.is_ascii_alphanumeric())
                                && b.is_some_and(|c| c.is_ascii_alphanumeric())
                        };
                        if joins(out.chars().next_back(), filler.chars().next()) {
                            out.push(' ');
                        }
                        out.push_str(filler);
                        if joins(filler.chars().next_back(), chars.peek().copied()) {
                            out.push(' ');
                        }
                        continue;
                    }
                }
                out.push('{');
                out.push_str(&slot);
                out.push('}');
            } else {
                out.push(c);
            }
        }
        tidy_spaces(&out)
    }

    /// Every template's sentences, normalised against the reference vocabulary, with the
    /// template's index.
    pub fn examples(&self, cap: usize) -> Vec<Example> {
        let vocab = reference_vocabulary();
        let mut out = Vec::new();
        for (k, t) in self.templates.iter().enumerate() {
            for sentence in self.expand(t, cap) {
                let normalised = Reading::new(&sentence, &vocab).normalised();
                out.push(Example {
                    template: k,
                    intent: t.intent,
                    lang: t.lang,
                    sentence,
                    normalised,
                });
            }
        }
        out
    }
}

/// One training sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Index of its template in [`Corpus::templates`].
    pub template: usize,
    pub intent: Intent,
    pub lang: Lang,
    pub sentence: String,
    pub normalised: String,
}

enum Part {
    Text(String),
    Choice(Vec<String>),
}

fn split_template(text: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        parts.push(Part::Text(rest[..open].to_owned()));
        let after = &rest[open + 1..];
        let close = after.find(']').unwrap_or(after.len());
        parts.push(Part::Choice(
            after[..close].split('|').map(str::to_owned).collect(),
        ));
        rest = after.get(close + 1..).unwrap_or("");
    }
    parts.push(Part::Text(rest.to_owned()));
    parts
}

fn tidy_spaces(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The names the training sentences are read against: the reference plant's (Hangzhou
/// automotive parts). The model never sees them — only their placeholders.
pub fn reference_vocabulary() -> Vocabulary {
    let m = |id: &str, name: &str| (id.to_owned(), name.to_owned(), None);
    let p = |id: &str, name: &str, zh: &str| (id.to_owned(), name.to_owned(), Some(zh.to_owned()));
    Vocabulary {
        machines: vec![
            m("TURN-01", "CNC lathe 1"),
            m("TURN-02", "CNC lathe 2"),
            m("TURN-03", "CNC lathe 3"),
            m("TURN-04", "Old retrofitted lathe (about 35 % slower)"),
            m("MILL-01", "Vertical machining centre 1"),
            m("MILL-02", "Vertical machining centre 2"),
            m(
                "MILL-03",
                "Gear hobber (hobbing only; VMCs can cut the same teeth, slower)",
            ),
            m("GRIND-01", "CNC cylindrical grinder 1"),
            m("GRIND-02", "CNC cylindrical grinder 2"),
            m("GRIND-03", "Old universal grinder (about 40 % slower)"),
            m(
                "HT-01",
                "Sealed-quench furnace 1 (large chamber, 900x600x600)",
            ),
            m(
                "HT-02",
                "Sealed-quench furnace 2 (small chamber, ~30 % longer per part)",
            ),
            m("QC-01", "CMM"),
            m("QC-02", "Gauging bench (about 25 % slower than the CMM)"),
            m("ASSY-01", "Servo press-fit station"),
        ],
        products: vec![
            p("P-SHAFT-IN", "Gearbox input shaft", "变速箱输入轴"),
            p("P-SHAFT-OUT", "Gearbox output shaft", "变速箱输出轴"),
            p("P-GEAR-PLN", "Planetary gear", "行星齿轮"),
            p("P-GEAR-3", "3rd-speed gear (component)", "三挡齿轮"),
            p("P-CS-ASSY", "Countershaft assembly", "中间轴总成"),
            p("P-FLANGE", "Output flange", "输出法兰"),
            p("P-BUSH", "Case-hardened bushing", "渗碳衬套"),
            p("P-HUB", "Wheel hub", "轮毂"),
        ],
        params: [
            "axial_feed",
            "carbon_potential",
            "carburising_temp",
            "cutting_speed",
            "feed",
            "hob_speed",
            "plunge_infeed",
            "quench_temp",
            "tempering_temp",
            "wheel_speed",
        ]
        .map(str::to_owned)
        .to_vec(),
        signals: ["vibration_mm_s", "temperature_rise_c", "current_a"]
            .map(str::to_owned)
            .to_vec(),
    }
}

/// A small deterministic generator (xorshift64*).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// FNV-1a over a tag and characters.
fn hash(tag: u8, chars: &[char]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    eat(tag);
    for c in chars {
        for b in (*c as u32).to_le_bytes() {
            eat(b);
        }
    }
    h
}

/// The features of a normalised request: character 1- to 4-grams (1-grams only of Chinese
/// characters and placeholders) over the text with a space at each end, and word 1- and
/// 2-grams of its Latin words and placeholders; sorted, without repeats.
pub fn features(normalised: &str) -> Vec<u64> {
    let mut chars: Vec<char> = Vec::with_capacity(normalised.len() + 2);
    chars.push(' ');
    chars.extend(normalised.chars());
    chars.push(' ');
    let mut out = Vec::with_capacity(chars.len() * 5);
    for n in 1..=4usize {
        for w in chars.windows(n) {
            if n == 1 && (w[0].is_ascii() || w[0].is_whitespace()) {
                continue;
            }
            out.push(hash(n as u8, w));
        }
    }
    // Words: runs of ASCII letters and digits, and each placeholder or Chinese character
    // breaks a run.
    let mut words: Vec<Vec<char>> = Vec::new();
    let mut current: Vec<char> = Vec::new();
    for &c in &chars {
        if c.is_ascii_alphanumeric() || c == '\'' {
            current.push(c);
        } else {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            if super::slots::is_placeholder(c) {
                words.push(vec![c]);
            }
        }
    }
    for (k, w) in words.iter().enumerate() {
        out.push(hash(10, w));
        if let Some(next) = words.get(k + 1) {
            let mut pair = w.clone();
            pair.push(' ');
            pair.extend(next);
            out.push(hash(11, &pair));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// How the classifier is trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Training {
    /// Passes over the examples.
    pub epochs: usize,
    /// Step size of stochastic gradient descent.
    pub rate: f32,
    /// At most this many sentences per template.
    pub per_template: usize,
    /// Shuffling seed.
    pub seed: u64,
}

impl Default for Training {
    fn default() -> Training {
        Training {
            epochs: 10,
            rate: 1.5,
            per_template: 8,
            seed: 24,
        }
    }
}

/// A multinomial logistic regression over sparse binary features (scaled to unit length),
/// trained by averaged stochastic gradient descent.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentModel {
    index: HashMap<u64, u32>,
    /// Feature-major: `weights[f * classes + k]`.
    weights: Vec<f32>,
    bias: Vec<f32>,
}

const CLASSES: usize = Intent::ALL.len();

impl IntentModel {
    /// Trains on `examples` (their normalised text and intent).
    pub fn fit(examples: &[Example], training: &Training) -> IntentModel {
        let mut index: HashMap<u64, u32> = HashMap::new();
        let rows: Vec<(Vec<u32>, f32, usize)> = examples
            .iter()
            .map(|e| {
                let ids: Vec<u32> = features(&e.normalised)
                    .into_iter()
                    .map(|h| {
                        let next = index.len() as u32;
                        *index.entry(h).or_insert(next)
                    })
                    .collect();
                let scale = 1.0 / (ids.len().max(1) as f32).sqrt();
                (ids, scale, e.intent.index())
            })
            .collect();
        let n = index.len();
        let mut w = vec![0f32; n * CLASSES];
        let mut u = vec![0f32; n * CLASSES];
        let mut b = [0f32; CLASSES];
        let mut ub = [0f32; CLASSES];
        let mut order: Vec<usize> = (0..rows.len()).collect();
        let mut rng = Rng::new(training.seed);
        let mut c: f32 = 1.0;
        for _ in 0..training.epochs {
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
            for &r in &order {
                let (ids, x, y) = &rows[r];
                let mut scores = b;
                for &f in ids {
                    let row = &w[f as usize * CLASSES..][..CLASSES];
                    for k in 0..CLASSES {
                        scores[k] += row[k] * x;
                    }
                }
                let p = softmax(&scores);
                let mut g = [0f32; CLASSES];
                for k in 0..CLASSES {
                    g[k] = training.rate * (p[k] - if k == *y { 1.0 } else { 0.0 });
                }
                for &f in ids {
                    let at = f as usize * CLASSES;
                    for k in 0..CLASSES {
                        w[at + k] -= g[k] * x;
                        u[at + k] -= c * g[k] * x;
                    }
                }
                for k in 0..CLASSES {
                    b[k] -= g[k];
                    ub[k] -= c * g[k];
                }
                c += 1.0;
            }
        }
        // Averaged weights: w - u / c.
        for (wi, ui) in w.iter_mut().zip(&u) {
            *wi -= ui / c;
        }
        for k in 0..CLASSES {
            b[k] -= ub[k] / c;
        }
        IntentModel {
            index,
            weights: w,
            bias: b.to_vec(),
        }
    }

    /// The built-in model, trained on the built-in file at first use.
    pub fn builtin() -> &'static IntentModel {
        static MODEL: LazyLock<IntentModel> = LazyLock::new(|| {
            let training = Training::default();
            IntentModel::fit(
                &Corpus::builtin().examples(training.per_template),
                &training,
            )
        });
        &MODEL
    }

    /// The probability of each intent for a normalised request, most likely first.
    pub fn classify(&self, normalised: &str) -> Vec<(Intent, f32)> {
        let all = features(normalised);
        let ids: Vec<usize> = all
            .iter()
            .filter_map(|h| self.index.get(h).map(|&i| i as usize))
            .collect();
        // Scaled by all the request's features, seen or not, as in training: a request of
        // mostly unknown words scores near the prior.
        let x = 1.0 / (all.len().max(1) as f32).sqrt();
        let mut scores = [0f32; CLASSES];
        scores.copy_from_slice(&self.bias);
        for f in ids {
            let row = &self.weights[f * CLASSES..][..CLASSES];
            for k in 0..CLASSES {
                scores[k] += row[k] * x;
            }
        }
        let p = softmax(&scores);
        let mut out: Vec<(Intent, f32)> = Intent::ALL.iter().map(|i| (*i, p[i.index()])).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    /// How many distinct features it knows.
    pub fn features_known(&self) -> usize {
        self.index.len()
    }
}

fn softmax(scores: &[f32; CLASSES]) -> [f32; CLASSES] {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut p = [0f32; CLASSES];
    let mut sum = 0.0;
    for k in 0..CLASSES {
        p[k] = (scores[k] - max).exp();
        sum += p[k];
    }
    for v in &mut p {
        *v /= sum;
    }
    p
}

/// Accuracy of k-fold cross-validation holding out whole templates.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossValidation {
    pub folds: usize,
    /// (right, total) of the held-out sentences, English and Chinese.
    pub en: (usize, usize),
    pub zh: (usize, usize),
    /// Held-out templates' sentences the model got wrong: (sentence, expected, chosen, p).
    pub misses: Vec<(String, Intent, Intent, f32)>,
}

impl CrossValidation {
    pub fn accuracy(part: (usize, usize)) -> f64 {
        part.0 as f64 / part.1.max(1) as f64
    }
}

/// Trains `folds` models, each without one fold of the templates, and tests each on the
/// sentences of the templates it did not see.
pub fn cross_validate(corpus: &Corpus, folds: usize, training: &Training) -> CrossValidation {
    let examples = corpus.examples(training.per_template);
    let mut fold_of: Vec<usize> = (0..corpus.templates.len()).collect();
    let mut rng = Rng::new(training.seed ^ 0xF01D);
    for i in (1..fold_of.len()).rev() {
        fold_of.swap(i, rng.below(i + 1));
    }
    let mut assigned = vec![0; fold_of.len()];
    for (position, &template) in fold_of.iter().enumerate() {
        assigned[template] = position % folds.max(1);
    }
    let mut cv = CrossValidation {
        folds,
        en: (0, 0),
        zh: (0, 0),
        misses: Vec::new(),
    };
    for fold in 0..folds.max(1) {
        let train: Vec<Example> = examples
            .iter()
            .filter(|e| assigned[e.template] != fold)
            .cloned()
            .collect();
        let model = IntentModel::fit(&train, training);
        for e in examples.iter().filter(|e| assigned[e.template] == fold) {
            let best = model.classify(&e.normalised)[0];
            let part = match e.lang {
                Lang::En => &mut cv.en,
                Lang::Zh => &mut cv.zh,
            };
            part.1 += 1;
            if best.0 == e.intent {
                part.0 += 1;
            } else {
                cv.misses
                    .push((e.sentence.clone(), e.intent, best.0, best.1));
            }
        }
    }
    cv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_training_file_parses_and_covers_every_intent_in_both_languages() {
        let corpus = Corpus::builtin();
        for intent in Intent::ALL {
            for lang in [Lang::En, Lang::Zh] {
                let n = corpus
                    .templates
                    .iter()
                    .filter(|t| t.intent == intent && t.lang == lang)
                    .count();
                assert!(n >= 12, "{} {lang:?}: {n} templates", intent.name());
            }
        }
        assert!(Corpus::parse("nonsense\ten\tx").is_err());
        assert!(Corpus::parse("plant_status\txx\tx").is_err());
        assert!(Corpus::parse("plant_status\ten\t[a|b").is_err());
    }

    #[test]
    fn every_filler_reads_as_its_placeholder() {
        let corpus = Corpus::builtin();
        let vocab = reference_vocabulary();
        for (slot, placeholder) in [
            ('M', 'Ⓜ'),
            ('P', 'Ⓟ'),
            ('A', 'Ⓐ'),
            ('S', 'Ⓢ'),
            ('H', 'Ⓗ'),
            ('Q', 'Ⓝ'),
            ('V', 'Ⓝ'),
        ] {
            for lang in [Lang::En, Lang::Zh] {
                let fillers = corpus.fillers(slot, lang);
                assert!(!fillers.is_empty(), "{slot} {lang:?}");
                for f in fillers {
                    let n = Reading::new(f, &vocab).normalised();
                    let placeholders: Vec<char> = n
                        .chars()
                        .filter(|c| super::super::slots::is_placeholder(*c))
                        .collect();
                    assert_eq!(placeholders, [placeholder], "{f} reads as {n}");
                }
            }
        }
    }

    #[test]
    fn templates_expand_to_distinct_filled_sentences() {
        let corpus = Corpus::parse(
            "@M\ten\tTURN-01\n@H\ten\t6 hours\nschedule_what_if\ten\t[What if|Suppose] {M} is [down|out|] for {H}",
        )
        .expect("parses");
        let t = &corpus.templates[0];
        let mut sentences = corpus.expand(t, 10);
        assert_eq!(sentences.len(), 6);
        sentences.sort();
        sentences.dedup();
        assert_eq!(sentences.len(), 6);
        assert!(sentences.contains(&"Suppose TURN-01 is for 6 hours".to_owned()));
        assert!(
            sentences
                .iter()
                .all(|s| !s.contains('{') && !s.contains('['))
        );
        assert_eq!(corpus.expand(t, 3).len(), 3);
    }

    /// The floor under the model's accuracy on paraphrases it was not trained on (whole
    /// templates held out). The example `intent_cv` prints the figures and the misses.
    #[test]
    fn cross_validation_holding_out_templates_stays_above_its_floor() {
        let training = Training {
            epochs: 4,
            per_template: 4,
            ..Training::default()
        };
        let cv = cross_validate(&Corpus::builtin(), 4, &training);
        let (en, zh) = (
            CrossValidation::accuracy(cv.en),
            CrossValidation::accuracy(cv.zh),
        );
        // Measured 0.875 and 0.900 when written (the full training gives about 0.89 and 0.92).
        assert!(en > 0.85 && zh > 0.85, "English {en:.3}, Chinese {zh:.3}");
    }
}
