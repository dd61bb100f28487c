// GNU libmicrohttpd (Debian: libmicrohttpd-dev), the HTTP/1.1 protocol under SwiftLMHTTP.
//
// Swift imports neither C variadic functions nor macros that cast, so the few that SwiftLMHTTP
// needs are wrapped here: starting a daemon with a fixed option list, reading a connection's
// socket, restarting its idle timer, and the length of a response of unknown size.
#include <microhttpd.h>

/// Starts a daemon on a socket that the caller has bound and put into listening state, calling
/// `completed` for every request that reached `access_handler`. Errors are not logged: the flags
/// leave out MHD_USE_ERROR_LOG.
static inline struct MHD_Daemon *swiftlm_mhd_start_daemon(
    unsigned int flags, MHD_socket listen_fd, MHD_AccessHandlerCallback access_handler,
    void *access_cls, MHD_RequestCompletedCallback completed, void *completed_cls,
    unsigned int connection_limit, unsigned int connection_timeout_seconds) {
    return MHD_start_daemon(
        flags, 0, NULL, NULL, access_handler, access_cls,
        MHD_OPTION_LISTEN_SOCKET, listen_fd,
        MHD_OPTION_NOTIFY_COMPLETED, completed, completed_cls,
        MHD_OPTION_CONNECTION_LIMIT, connection_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout_seconds,
        MHD_OPTION_END);
}

/// The socket of a connection, or -1.
static inline MHD_socket swiftlm_mhd_connection_socket(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info == NULL ? MHD_INVALID_SOCKET : info->connect_fd;
}

/// The length of a response whose end only its content reader knows (chunked encoding).
static inline uint64_t swiftlm_mhd_size_unknown(void) { return MHD_SIZE_UNKNOWN; }

/// Restarts a connection's idle timer and keeps its timeout. Setting a timeout on a connection
/// that has none restarts the timer (see MHD_CONNECTION_OPTION_TIMEOUT), hence the two calls.
static inline void swiftlm_mhd_restart_idle_timer(
    struct MHD_Connection *connection, unsigned int timeout_seconds) {
    MHD_set_connection_option(connection, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    MHD_set_connection_option(connection, MHD_CONNECTION_OPTION_TIMEOUT, timeout_seconds);
}
