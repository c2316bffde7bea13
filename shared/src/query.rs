//! Read side: services, series and bucket history, shaped for the query API.
