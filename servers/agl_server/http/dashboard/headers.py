"""Response headers of the dashboard's HTML pages."""

# The page shows what agents wrote (span attributes, messages): even though it only ever inserts
# text, the browser is told to run nothing but the dashboard's own files and not to be framed.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
