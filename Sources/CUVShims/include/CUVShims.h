#ifndef CUVSHIMS_H
#define CUVSHIMS_H
// Function-like OpenSSL macros that Swift cannot import, as static inline functions.
#include <openssl/ssl.h>
#include <openssl/bio.h>
#include <openssl/err.h>

/// BIO_set_mem_eof_return: an empty memory BIO reads as "retry" (-1), not end of stream.
static inline long cuv_BIO_set_mem_eof_return(BIO *bio, int value) {
    return BIO_set_mem_eof_return(bio, value);
}

/// BIO_pending: bytes waiting to be read from a BIO.
static inline size_t cuv_BIO_pending(BIO *bio) {
    return BIO_ctrl_pending(bio);
}

/// SSL_CTX_set_min_proto_version.
static inline int cuv_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

/// SSL_set_tlsext_host_name (SNI).
static inline int cuv_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

/// SSL_CTX_set_mode.
static inline long cuv_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}

/// OPENSSL_free.
static inline void cuv_OPENSSL_free(void *p) {
    OPENSSL_free(p);
}

/// SSL_CTX_add1_chain_cert: appends a certificate (reference taken) to the context's chain.
static inline int cuv_SSL_CTX_add1_chain_cert(SSL_CTX *ctx, X509 *x509) {
    return (int)SSL_CTX_add1_chain_cert(ctx, x509);
}

#endif
