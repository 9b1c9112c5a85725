//! The sentences the synthetic benchmark speaks: a small grammar over a few hundred common English
//! words (DATA.md "A synthetic benchmark"). Transcripts are lowercase words separated by single
//! spaces, numbers written as words, so a reference needs no normalization beyond eval's own.

use crate::engine::Rng;

pub(super) const NOUNS: &[&str] = &[
    "dog",
    "cat",
    "bird",
    "horse",
    "fish",
    "house",
    "car",
    "boat",
    "train",
    "bus",
    "book",
    "letter",
    "table",
    "chair",
    "window",
    "door",
    "garden",
    "tree",
    "flower",
    "river",
    "mountain",
    "road",
    "bridge",
    "city",
    "village",
    "school",
    "teacher",
    "doctor",
    "farmer",
    "child",
    "friend",
    "neighbor",
    "brother",
    "sister",
    "mother",
    "father",
    "baby",
    "student",
    "driver",
    "king",
    "queen",
    "apple",
    "bread",
    "cheese",
    "coffee",
    "water",
    "milk",
    "cake",
    "soup",
    "box",
    "bag",
    "key",
    "phone",
    "computer",
    "clock",
    "lamp",
    "picture",
    "song",
    "story",
    "game",
    "ball",
    "hat",
    "coat",
    "shoe",
    "shirt",
    "ticket",
    "map",
    "plane",
    "ship",
    "island",
    "beach",
    "forest",
    "field",
    "farm",
    "shop",
    "market",
    "kitchen",
    "office",
    "library",
    "hospital",
    "station",
    "hotel",
    "restaurant",
    "bottle",
    "glass",
    "plate",
    "cup",
    "knife",
    "pencil",
    "paper",
    "camera",
    "radio",
    "guitar",
    "piano",
    "wall",
    "floor",
    "roof",
    "garage",
    "bicycle",
    "street",
    "park",
    "lake",
];

pub(super) const ADJECTIVES: &[&str] = &[
    "big",
    "small",
    "old",
    "new",
    "young",
    "red",
    "blue",
    "green",
    "yellow",
    "black",
    "white",
    "brown",
    "happy",
    "sad",
    "quiet",
    "loud",
    "warm",
    "cold",
    "hot",
    "dark",
    "bright",
    "clean",
    "dirty",
    "heavy",
    "light",
    "long",
    "short",
    "tall",
    "strange",
    "famous",
    "friendly",
    "lazy",
    "busy",
    "empty",
    "full",
    "cheap",
    "expensive",
    "beautiful",
    "simple",
    "careful",
    "early",
    "late",
    "quick",
    "slow",
    "soft",
    "hard",
    "sweet",
    "fresh",
    "tiny",
    "wooden",
];

/// Verbs as (base, past).
const VERBS: &[(&str, &str)] = &[
    ("open", "opened"),
    ("close", "closed"),
    ("carry", "carried"),
    ("paint", "painted"),
    ("clean", "cleaned"),
    ("find", "found"),
    ("buy", "bought"),
    ("sell", "sold"),
    ("bring", "brought"),
    ("take", "took"),
    ("see", "saw"),
    ("watch", "watched"),
    ("fix", "fixed"),
    ("move", "moved"),
    ("push", "pushed"),
    ("pull", "pulled"),
    ("wash", "washed"),
    ("cook", "cooked"),
    ("read", "read"),
    ("write", "wrote"),
    ("draw", "drew"),
    ("catch", "caught"),
    ("throw", "threw"),
    ("hide", "hid"),
    ("keep", "kept"),
    ("leave", "left"),
    ("lose", "lost"),
    ("send", "sent"),
    ("show", "showed"),
    ("visit", "visited"),
    ("call", "called"),
    ("help", "helped"),
    ("follow", "followed"),
    ("check", "checked"),
    ("count", "counted"),
    ("lift", "lifted"),
    ("drop", "dropped"),
    ("order", "ordered"),
    ("borrow", "borrowed"),
    ("build", "built"),
];

const PEOPLE: &[&str] = &[
    "anna",
    "ben",
    "carla",
    "david",
    "emma",
    "frank",
    "grace",
    "henry",
    "julia",
    "kevin",
    "laura",
    "mark",
    "nina",
    "oscar",
    "paul",
    "rachel",
    "sam",
    "tom",
    "victor",
    "wendy",
    "my uncle",
    "my aunt",
    "our teacher",
    "the doctor",
    "the farmer",
    "the driver",
    "the old man",
    "the young woman",
    "her cousin",
    "his boss",
];

const TIMES: &[&str] = &[
    "today",
    "yesterday",
    "tomorrow",
    "this morning",
    "this evening",
    "last night",
    "every day",
    "on monday",
    "on tuesday",
    "on friday",
    "on sunday",
    "next week",
    "last year",
    "in the morning",
    "after lunch",
    "before dinner",
    "at noon",
    "in the spring",
    "in the winter",
    "right now",
];

const NUMBERS: &[&str] = &[
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "fifteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "a hundred",
];

const PLACES: &[&str] = &[
    "the kitchen",
    "the garden",
    "the station",
    "the market",
    "the office",
    "the library",
    "the beach",
    "the park",
    "the hotel",
    "the hospital",
    "the school",
    "the city",
    "the village",
    "the lake",
    "the forest",
    "the farm",
    "the shop",
    "the bridge",
    "the river",
    "the island",
];

fn pick<'a>(rng: &mut Rng, xs: &[&'a str]) -> &'a str {
    xs[rng.below(xs.len() as u64) as usize]
}

/// A noun phrase: `the dog`, `a red car`, `my friend's old bag`.
fn noun_phrase(rng: &mut Rng) -> String {
    let noun = pick(rng, NOUNS);
    match rng.below(4) {
        0 => format!("the {noun}"),
        1 => format!("the {} {noun}", pick(rng, ADJECTIVES)),
        2 => format!("my {} {noun}", pick(rng, ADJECTIVES)),
        _ => format!(
            "{} {noun}",
            if starts_with_vowel(noun) { "an" } else { "a" }
        ),
    }
}

fn starts_with_vowel(w: &str) -> bool {
    w.starts_with(['a', 'e', 'i', 'o', 'u'])
}

pub(super) fn plural(noun: &str) -> String {
    if noun == "child" {
        "children".into()
    } else if noun == "knife" {
        "knives".into()
    } else if noun.ends_with(['s', 'x']) || noun.ends_with("ch") || noun.ends_with("sh") {
        format!("{noun}es")
    } else if noun.ends_with('y') && !noun.ends_with("ay") && !noun.ends_with("ey") {
        format!("{}ies", &noun[..noun.len() - 1])
    } else {
        format!("{noun}s")
    }
}

/// One sentence from the grammar (4 to about 12 words).
pub fn sentence(rng: &mut Rng) -> String {
    let (verb, past) = VERBS[rng.below(VERBS.len() as u64) as usize];
    match rng.below(10) {
        0 => format!(
            "{} {past} {} {}",
            pick(rng, PEOPLE),
            noun_phrase(rng),
            pick(rng, TIMES)
        ),
        1 => format!(
            "please {verb} {} in {}",
            noun_phrase(rng),
            pick(rng, PLACES)
        ),
        2 => format!(
            "we will {verb} {} {} {}",
            pick(rng, NUMBERS),
            plural(pick(rng, NOUNS)),
            pick(rng, TIMES)
        ),
        3 => format!(
            "where did {} {verb} {}",
            pick(rng, PEOPLE),
            noun_phrase(rng)
        ),
        4 => format!(
            "i think {} is very {}",
            noun_phrase(rng),
            pick(rng, ADJECTIVES)
        ),
        5 => format!(
            "there are {} {} near {}",
            pick(rng, NUMBERS),
            plural(pick(rng, NOUNS)),
            pick(rng, PLACES)
        ),
        6 => format!(
            "can you {verb} {} for {}",
            noun_phrase(rng),
            pick(rng, PEOPLE)
        ),
        7 => format!(
            "{} and {} went to {} {}",
            pick(rng, PEOPLE),
            pick(rng, PEOPLE),
            pick(rng, PLACES),
            pick(rng, TIMES)
        ),
        8 => format!(
            "do not {verb} {} before {}",
            noun_phrase(rng),
            pick(rng, PEOPLE)
        ),
        _ => format!(
            "{} was {} because of {}",
            noun_phrase(rng),
            pick(rng, ADJECTIVES),
            noun_phrase(rng)
        ),
    }
}

/// `n` distinct sentences (fewer only if the grammar runs dry after many tries), seeded.
pub fn distinct_sentences(rng: &mut Rng, n: usize) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    let mut tries = 0;
    while out.len() < n && tries < n * 50 {
        tries += 1;
        let s = sentence(rng);
        if seen.insert(s.clone()) {
            out.push(s);
        }
    }
    out
}

/// The function words the sentence patterns add around the word lists.
const GLUE: &[&str] = &[
    "please", "in", "we", "will", "where", "did", "i", "think", "is", "very", "there", "are",
    "near", "can", "you", "for", "and", "went", "to", "do", "not", "before", "was", "because",
    "of", "a", "an", "my", "the",
];

/// How many distinct words the grammar can produce (the README's "a few hundred").
pub fn vocabulary_size() -> usize {
    let mut words = std::collections::BTreeSet::<String>::new();
    let lists: [&[&str]; 7] = [NOUNS, ADJECTIVES, PEOPLE, TIMES, NUMBERS, PLACES, GLUE];
    for list in lists {
        for phrase in list {
            words.extend(phrase.split(' ').map(String::from));
        }
    }
    for (v, p) in VERBS {
        words.insert(v.to_string());
        words.insert(p.to_string());
    }
    words.extend(NOUNS.iter().map(|n| plural(n)));
    words.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_lowercase_words_and_seeded() {
        let a = distinct_sentences(&mut Rng::new(7), 200);
        let b = distinct_sentences(&mut Rng::new(7), 200);
        assert_eq!(a, b);
        assert_eq!(a.len(), 200);
        for s in &a {
            let words: Vec<_> = s.split(' ').collect();
            assert!((4..=14).contains(&words.len()), "{s}");
            assert!(
                words
                    .iter()
                    .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase())),
                "{s}"
            );
        }
    }

    #[test]
    fn the_vocabulary_has_a_few_hundred_words() {
        let n = vocabulary_size();
        assert!((300..800).contains(&n), "{n}");
    }

    #[test]
    fn plurals_follow_english_spelling() {
        assert_eq!(plural("box"), "boxes");
        assert_eq!(plural("city"), "cities");
        assert_eq!(plural("key"), "keys");
        assert_eq!(plural("child"), "children");
        assert_eq!(plural("dog"), "dogs");
    }
}
