package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// FindSend returns the stored state of a send; found is false when no attempt has reserved
// the key yet.
func (s *Store) FindSend(ctx context.Context, key string) (row SendRow, found bool, err error) {
	row, err = s.GetSend(ctx, key)
	if errors.Is(err, pgx.ErrNoRows) {
		return SendRow{}, false, nil
	}
	return row, err == nil, err
}
