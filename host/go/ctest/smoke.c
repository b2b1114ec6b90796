/* A tiny C program against the generated header: open a store, put a token, read it back,
 * and check the error path. Built and run by host/go/run-tests.sh. */
#include "credlock.h"
#include <stdio.h>
#include <string.h>

static int failures = 0, passes = 0;
#define CHECK(cond, what) do { if (cond) { passes++; } else { failures++; fprintf(stderr, "FAIL: %s\n", what); } } while (0)

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s STORE_DIR\n", argv[0]); return 2; }
    char opts[4096];
    snprintf(opts, sizeof opts, "{\"store_dir\": \"%s\", \"ignore_env\": true, \"lock_timeout\": 2}", argv[1]);
    credlock_store *store = NULL;
    char *error = NULL, *result = NULL;
    int rc = credlock_open(opts, &store, &error);
    CHECK(rc == 0 && store != NULL && error == NULL, "credlock_open");
    if (rc != 0) { fprintf(stderr, "%s\n", error ? error : "(no report)"); return 1; }

    rc = credlock_put(store, "acme", "{\"access_token\":\"at-from-c\",\"expires_at\":4102444800}", &result, &error);
    CHECK(rc == 0 && result && strstr(result, "\"revision\":1"), "credlock_put");
    credlock_string_free(result);

    rc = credlock_token(store, "acme", 60000, &result, &error);
    CHECK(rc == 0 && result && strstr(result, "\"token\":\"at-from-c\""), "credlock_token");
    CHECK(error == NULL, "no error on success");
    credlock_string_free(result);

    rc = credlock_token(store, "nobody", 0, &result, &error);
    CHECK(rc == 3, "not found is exit code 3");
    CHECK(result == NULL, "no result on failure");
    CHECK(error && strstr(error, "\"code\":\"not-found\""), "error report names the code");
    credlock_string_free(error);

    rc = credlock_token(store, NULL, 0, &result, &error);
    CHECK(rc == 2 && error && strstr(error, "\"code\":\"invalid-tenant\""), "NULL tenant is a usage error");
    credlock_string_free(error);

    rc = credlock_token(store, "\xff\xfe", 0, &result, &error);
    CHECK(rc == 2 && error && strstr(error, "not valid UTF-8"), "invalid UTF-8 is a usage error");
    credlock_string_free(error);

    rc = credlock_list(NULL, &result, &error);
    CHECK(rc == 2, "NULL handle is a usage error");
    credlock_string_free(error);

    credlock_store *other = (credlock_store *)&other; /* must be reset to NULL */
    rc = credlock_open("{\"no_such_setting\": 1}", &other, &error);
    CHECK(rc == 2 && other == NULL && error && strstr(error, "invalid-options"), "unknown option refused");
    credlock_string_free(error);

    rc = credlock_list(store, NULL, NULL);
    CHECK(rc == 0, "results may be ignored with NULL out-pointers");

    credlock_close(store);
    credlock_close(NULL);
    credlock_string_free(NULL);
    printf("C ABI (%s): %d passed, %d failed\n", credlock_version(), passes, failures);
    return failures ? 1 : 0;
}
