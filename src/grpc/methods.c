/*
 * The method table of inference.GRPCInferenceService: path, the role a
 * token needs (server/routes.h, as the REST routes of the same operation),
 * the handler and, for an inference, its finish.
 */
#include "grpc/rpc.h"

#include <string.h>

#include "server/routes.h"

/* ---- the method table ------------------------------------------------------------------------ */

#define SVC "/inference.GRPCInferenceService/"
static const ap_grpc_method methods[] = {
    {SVC "ServerLive", ROLE_PUBLIC, ap__grpc_server_live, NULL},
    {SVC "ServerReady", ROLE_PUBLIC, ap__grpc_server_ready, NULL},
    {SVC "ServerMetadata", ROLE_READ, ap__grpc_server_metadata, NULL},
    {SVC "ModelReady", ROLE_READ, ap__grpc_model_ready, NULL},
    {SVC "ModelMetadata", ROLE_READ, ap__grpc_model_metadata, NULL},
    {SVC "ModelStatistics", ROLE_READ, ap__grpc_model_statistics, NULL},
    {SVC "ModelInfer", ROLE_PREDICT, ap__grpc_model_infer, ap__grpc_model_infer_finish},
    {SVC "RepositoryIndex", ROLE_READ, ap__grpc_repo_index, NULL},
    {SVC "RepositoryModelLoad", ROLE_ADMIN, ap__grpc_repo_load, NULL},
    {SVC "RepositoryModelUnload", ROLE_ADMIN, ap__grpc_repo_unload, NULL},
};

const ap_grpc_method *ap__grpc_method(const char *path)
{
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
        if (!strcmp(methods[i].path, path))
            return &methods[i];
    return NULL;
}
