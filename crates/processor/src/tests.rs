use super::*;
use arrow::array::{BooleanArray, MapBuilder, TimestampMillisecondArray};
use arrow::datatypes::{Int32Type, UInt64Type};

fn parts(url: &str) -> UrlParts {
    UrlParts::parse(url)
}

#[test]
fn hostname_is_lower_case_without_www() {
    assert_eq!(parts("https://WWW.Shop.Example/x").hostname.as_deref(), Some("shop.example"));
    assert_eq!(parts("https://shop.example:8443/x").hostname.as_deref(), Some("shop.example"));
    assert_eq!(parts("https://www./").hostname.as_deref(), Some("www."));
}

#[test]
fn path_is_decoded_and_defaults_to_slash() {
    assert_eq!(parts("https://a.example").path.as_deref(), Some("/"));
    assert_eq!(parts("https://a.example/caf%C3%A9?q=1#top").path.as_deref(), Some("/café"));
    assert_eq!(parts("/pricing?utm_source=x").path.as_deref(), Some("/pricing"));
    assert_eq!(parts("/pricing").hostname, None);
    assert_eq!(parts("not a url"), UrlParts::default());
    assert_eq!(parts("mailto:someone@example.com").path, None);
}

#[test]
fn utm_values_come_from_the_query() {
    let p = parts(
        "https://a.example/?utm_source=News+Letter&utm_medium=email&utm_campaign=&utm_campaign=bf&utm_term=a%20b",
    );
    assert_eq!(
        p.utm,
        [
            Some("News Letter".to_string()),
            Some("email".to_string()),
            Some("bf".to_string()),
            None,
            Some("a b".to_string())
        ]
    );
}

/// Raw rows with the given page URLs and nothing else.
fn raw_batch(urls: Vec<Option<&str>>) -> RecordBatch {
    let rows: Vec<Row> = urls.into_iter().map(|url| Row { url, ..Row::default() }).collect();
    raw_rows(&rows)
}

/// The raw fields the processor reads; the others are left empty.
#[derive(Default, Clone, Copy)]
struct Row<'a> {
    url: Option<&'a str>,
    referrer: Option<&'a str>,
    user_agent: Option<&'a str>,
    client_id: Option<&'a str>,
    ip_hash: Option<&'a str>,
}

fn raw_rows<'a>(rows: &[Row<'a>]) -> RecordBatch {
    let n = rows.len();
    let schema = schema::raw_events();
    let text = |v: Vec<Option<&str>>| Arc::new(StringArray::from(v)) as ArrayRef;
    let pick = |f: fn(&Row<'a>) -> Option<&'a str>| text(rows.iter().map(f).collect());
    let ts =
        || Arc::new(TimestampMillisecondArray::from(vec![1_700_000_000_000i64; n]).with_timezone("UTC")) as ArrayRef;
    let mut props = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for _ in 0..n {
        props.append(false).expect("append props");
    }
    let ids: Vec<String> = (0..n).map(|i| format!("id{i}")).collect();
    let columns: Vec<ArrayRef> = vec![
        text(vec![Some("t"); n]),
        text(ids.iter().map(|s| Some(s.as_str())).collect()),
        ts(),
        ts(),
        text(vec![Some("pageview"); n]),
        pick(|r| r.client_id),
        text(vec![None; n]),
        text(vec![None; n]),
        pick(|r| r.url),
        pick(|r| r.referrer),
        text(vec![None; n]),
        pick(|r| r.user_agent),
        pick(|r| r.ip_hash),
        text(vec![None; n]),
        text(vec![None; n]),
        Arc::new(Int32Array::from(vec![None; n])),
        Arc::new(arrow::array::Float64Array::from(vec![None; n])),
        text(vec![None; n]),
        Arc::new(BooleanArray::from(vec![true; n])),
        Arc::new(props.finish()),
        text(vec![None; n]),
    ];
    RecordBatch::try_new(schema, columns).expect("raw batch")
}

fn strings_of(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let array = batch.column_by_name(name).and_then(|a| a.as_any().downcast_ref::<StringArray>()).expect(name);
    array.iter().map(|v| v.map(str::to_string)).collect()
}

const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

#[test]
fn derived_columns_and_bots_left_out() {
    let human = Row {
        url: Some("https://www.shop.example/p?utm_medium=cpc&gclid=x"),
        referrer: Some("https://www.google.com/search?q=shoes"),
        user_agent: Some(CHROME),
        client_id: Some("c1"),
        ..Row::default()
    };
    let crawler = Row { user_agent: Some(GOOGLEBOT), ..human };
    let direct = Row { url: Some("https://shop.example/"), referrer: None, user_agent: None, ..human };
    let staged = process(&raw_rows(&[human, crawler, direct]), &Options::default()).expect("process");
    assert_eq!(staged.num_rows(), 3, "one processed row per raw row");
    let events = humans(&staged).expect("humans");
    assert_eq!(events.num_rows(), 2, "the crawler is left out");
    assert_eq!(strings_of(&events, col::EVENT_ID), [Some("id0".into()), Some("id2".into())]);
    assert_eq!(strings_of(&events, col::SOURCE), [Some("Google".into()), None]);
    assert_eq!(strings_of(&events, col::CHANNEL), [Some("Paid Search".into()), Some("Direct".into())]);
    assert_eq!(strings_of(&events, col::CLICK_ID), [Some("gclid".into()), None]);
    assert_eq!(strings_of(&events, col::REFERRER_PAGE), [Some("https://www.google.com/search".into()), None]);
    assert_eq!(strings_of(&events, col::BROWSER), [Some("Chrome".into()), None]);
    assert_eq!(strings_of(&events, col::OS), [Some("Windows".into()), None]);
    assert_eq!(strings_of(&events, col::DEVICE), [Some("Desktop".into()), None]);
    let visitors = events.column_by_name(col::VISITOR_ID).expect("visitor_id").as_primitive::<UInt64Type>();
    assert_eq!(visitors.value(0), visitors.value(1), "one client id, one visitor");
}

#[test]
fn cookieless_visitors_differ_by_address_and_agent() {
    let a = Row { url: Some("https://shop.example/"), ip_hash: Some("aa"), user_agent: Some(CHROME), ..Row::default() };
    let b = Row { ip_hash: Some("bb"), ..a };
    let c = Row { user_agent: Some("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"), ..a };
    let events = humans(&process(&raw_rows(&[a, b, c, a]), &Options::default()).expect("process")).expect("humans");
    let visitors = events.column_by_name(col::VISITOR_ID).expect("visitor_id").as_primitive::<UInt64Type>();
    let v: Vec<u64> = visitors.values().to_vec();
    assert_eq!(v[0], v[3]);
    assert_ne!(v[0], v[1]);
    assert_ne!(v[0], v[2]);
}

#[test]
fn process_keeps_raw_columns_and_adds_derived_ones() {
    let raw = raw_batch(vec![Some("https://www.a.example/p?utm_source=x"), None]);
    let staged = process(&raw, &Options::default()).expect("process");
    assert_eq!(staged.schema(), staged_schema());
    let events = humans(&staged).expect("humans");
    assert_eq!(events.schema(), schema::events());
    assert_eq!(events.num_rows(), 2);
    for i in 0..raw.num_columns() {
        assert_eq!(events.column(i).as_ref(), raw.column(i).as_ref());
    }
    let col = |name| {
        events
            .column_by_name(name)
            .and_then(|a| a.as_any().downcast_ref::<StringArray>().cloned())
            .expect("string column")
    };
    assert_eq!(col(col::HOSTNAME).value(0), "a.example");
    assert_eq!(col(col::PATH).value(0), "/p");
    assert_eq!(col(col::UTM_SOURCE).value(0), "x");
    assert!(col(col::HOSTNAME).is_null(1));
    assert!(col(col::UTM_MEDIUM).is_null(0));
}

#[test]
fn process_is_deterministic() {
    let raw = raw_batch(vec![Some("https://a.example/x?utm_medium=cpc")]);
    let options = Options::default();
    assert_eq!(process(&raw, &options).expect("first"), process(&raw, &options).expect("second"));
}

#[test]
fn process_rejects_other_schemas() {
    let batch = RecordBatch::new_empty(schema::events());
    assert!(matches!(process(&batch, &Options::default()), Err(ProcessError::BadInput { .. })));
}

#[test]
fn url_edge_cases() {
    let long = format!("https://shop.example/{}?utm_source=x", "a".repeat(20_000));
    let p = parts(&long);
    assert_eq!(p.hostname.as_deref(), Some("shop.example"));
    assert_eq!(p.path.as_ref().map(String::len), Some(20_001));
    assert_eq!(p.utm[0].as_deref(), Some("x"));
    // The fragment is not part of the path; an encoded `?` or `#` in the path is.
    assert_eq!(parts("https://a.example/a%3Fb%23c#frag").path.as_deref(), Some("/a?b#c"));
    assert_eq!(parts("https://a.example/%E2%82%AC%20x").path.as_deref(), Some("/€ x"));
    // Invalid UTF-8 after decoding is replaced, not dropped.
    assert_eq!(parts("https://a.example/%FF").path.as_deref(), Some("/\u{FFFD}"));
    // No host: a bare path keeps its path; a host-less scheme has neither.
    assert_eq!(parts("/p?gclid=1").click_id, Some("gclid"));
    assert_eq!(parts("file:///etc/passwd").hostname, None);
    assert_eq!(parts("").path, None);
    // Click ids: the first by rank wins, whatever the order in the query.
    assert_eq!(parts("https://a.example/?fbclid=1&gclid=2").click_id, Some("gclid"));
}

#[test]
fn each_supported_version_derives_its_own_channels_and_says_so() {
    let from_meta_ai = Row {
        url: Some("https://shop.example/"),
        referrer: Some("https://www.meta.ai/"),
        user_agent: Some(CHROME),
        client_id: Some("c1"),
        ..Row::default()
    };
    let raw = raw_rows(&[from_meta_ai]);
    let run = |version| {
        let options = Options { version, ..Options::default() };
        humans(&process(&raw, &options).expect("process")).expect("humans")
    };
    let v3 = run(3);
    assert_eq!(strings_of(&v3, col::SOURCE), [Some("meta.ai".into())]);
    assert_eq!(strings_of(&v3, col::CHANNEL), [Some("Referral".into())]);
    let v4 = run(4);
    assert_eq!(strings_of(&v4, col::SOURCE), [Some("Meta AI".into())]);
    assert_eq!(strings_of(&v4, col::CHANNEL), [Some("AI Assistants".into())]);
    let versions = |b: &RecordBatch| {
        b.column_by_name(col::PROCESSOR_VERSION).expect("processor_version").as_primitive::<Int32Type>().value(0)
    };
    assert_eq!((versions(&v3), versions(&v4)), (3, 4));
    // Everything but the source table is the same in both versions.
    assert_eq!(v3.column_by_name(col::VISITOR_ID), v4.column_by_name(col::VISITOR_ID));
    let unsupported = Options { version: 2, ..Options::default() };
    assert!(matches!(process(&raw, &unsupported), Err(ProcessError::Unsupported(UnsupportedVersion { version: 2 }))));
}
