package workflows

import "go.temporal.io/sdk/workflow"

// setQuery registers a typed query handler.
func setQuery[R any](ctx workflow.Context, name string, handle func() (R, error)) error {
	return workflow.SetQueryHandler(ctx, name, handle)
}

// setUpdate registers a typed update: validate refuses a request before it is accepted
// (nothing is recorded in the history), handle applies an accepted one.
func setUpdate[T, R any](ctx workflow.Context, name string, validate func(T) error, handle func(workflow.Context, T) (R, error)) error {
	return workflow.SetUpdateHandlerWithOptions(ctx, name, handle, workflow.UpdateHandlerOptions{Validator: validate})
}
