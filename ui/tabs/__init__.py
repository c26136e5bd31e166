"""One module per tab; each has TITLE, ID and build(ctx). `app.TABS` lists them in page order."""
