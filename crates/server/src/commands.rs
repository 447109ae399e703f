//! The client subcommands: `tenant create` and `query`.

use hourglass_client::{Client, QueryFormat};

use crate::cli::{OutputFormat, QueryArgs, TenantCommand};

pub async fn tenant(command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create { id, server } => {
            let client = Client::new(&server.server, &server.token);
            let created = client.create_tenant(&id).await?;
            println!("{}", serde_json::to_string_pretty(&created)?);
            Ok(())
        }
    }
}

pub async fn query(args: QueryArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server.server, &args.server.token);
    match args.format {
        OutputFormat::Table => {
            let batches = client.query_arrow(&args.sql).await?;
            let table = arrow::util::pretty::pretty_format_batches(&batches)?;
            println!("{table}");
        }
        OutputFormat::Csv => {
            let body = client.query_raw(&args.sql, QueryFormat::Csv).await?;
            print!("{}", String::from_utf8_lossy(&body));
        }
        OutputFormat::Json => {
            let body = client.query_raw(&args.sql, QueryFormat::Json).await?;
            println!("{}", String::from_utf8_lossy(&body));
        }
    }
    Ok(())
}
