use super::*;
use arrow::array::{BooleanArray, MapBuilder, TimestampMillisecondArray};

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

fn raw_batch(urls: Vec<Option<&str>>) -> RecordBatch {
    let n = urls.len();
    let schema = schema::raw_events();
    let text = |v: Vec<Option<&str>>| Arc::new(StringArray::from(v)) as ArrayRef;
    let ts =
        || Arc::new(TimestampMillisecondArray::from(vec![1_700_000_000_000i64; n]).with_timezone("UTC")) as ArrayRef;
    let mut props = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for _ in 0..n {
        props.append(false).expect("append props");
    }
    let columns: Vec<ArrayRef> = vec![
        text(vec![Some("t"); n]),
        text((0..n).map(|_| Some("id")).collect()),
        ts(),
        ts(),
        text(vec![Some("pageview"); n]),
        text(vec![None; n]),
        text(vec![None; n]),
        text(vec![None; n]),
        text(urls),
        text(vec![None; n]),
        text(vec![None; n]),
        text(vec![None; n]),
        text(vec![None; n]),
        text(vec![None; n]),
        text(vec![None; n]),
        Arc::new(Int32Array::from(vec![None; n])),
        Arc::new(arrow::array::Float64Array::from(vec![None; n])),
        text(vec![None; n]),
        Arc::new(BooleanArray::from(vec![true; n])),
        Arc::new(props.finish()),
    ];
    RecordBatch::try_new(schema, columns).expect("raw batch")
}

#[test]
fn process_keeps_raw_columns_and_adds_derived_ones() {
    let raw = raw_batch(vec![Some("https://www.a.example/p?utm_source=x"), None]);
    let events = process(&raw).expect("process");
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
    assert_eq!(process(&raw).expect("first"), process(&raw).expect("second"));
}

#[test]
fn process_rejects_other_schemas() {
    let batch = RecordBatch::new_empty(schema::events());
    assert!(matches!(process(&batch), Err(ProcessError::BadInput { .. })));
}
