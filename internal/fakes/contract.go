package fakes

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// The project's own descriptions of the provider endpoints Recoup calls (see each file's
// header). They are not copies of the providers' documents; TestContractsMatchOfficialSpecs
// holds them against those.
//
//go:embed contracts/*.yaml
var contractFiles embed.FS

// Provider contract names: the files contracts/<name>.yaml.
const (
	ContractSendGrid = "sendgrid"
	ContractTwilio   = "twilio"
	ContractOpenAI   = "openai"
)

// Contract is one provider's description, ready to validate requests.
type Contract struct {
	Name   string
	Doc    *openapi3.T
	router routers.Router
}

var (
	contractsMu sync.Mutex
	contracts   = map[string]*Contract{}
)

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

// stringFormats are the formats the descriptions use that kin-openapi does not check itself.
var stringFormats = map[string]openapi3.StringFormatValidator{
	"email": openapi3.NewCallbackValidator(func(s string) error {
		a, err := mail.ParseAddress(s)
		if err != nil || a.Address != s {
			return fmt.Errorf("not an email address")
		}
		return nil
	}),
	// Twilio's phone-number: Recoup sends E.164 numbers only.
	"phone-number": openapi3.NewCallbackValidator(func(s string) error {
		if !e164.MatchString(s) {
			return fmt.Errorf("not an E.164 phone number")
		}
		return nil
	}),
	"uri": openapi3.NewCallbackValidator(func(s string) error {
		u, err := url.Parse(s)
		if err != nil || !u.IsAbs() || u.Host == "" {
			return fmt.Errorf("not an absolute URI")
		}
		return nil
	}),
}

// LoadContract returns the named description (ContractSendGrid, …), loaded and checked once.
func LoadContract(name string) (*Contract, error) {
	contractsMu.Lock()
	defer contractsMu.Unlock()
	if c, ok := contracts[name]; ok {
		return c, nil
	}
	data, err := contractFiles.ReadFile("contracts/" + name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("contract %s: %w", name, err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("contract %s: %w", name, err)
	}
	doc.SetStringFormatValidators(stringFormats)
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("contract %s is not a valid OpenAPI document: %w", name, err)
	}
	// Route on the servers' paths only: the fakes listen on any host.
	routed := *doc
	routed.Servers = nil
	for _, s := range doc.Servers {
		if u, err := url.Parse(s.URL); err == nil && strings.Trim(u.Path, "/") != "" {
			routed.Servers = openapi3.Servers{{URL: u.Path}}
			break
		}
	}
	router, err := gorillamux.NewRouter(&routed)
	if err != nil {
		return nil, fmt.Errorf("contract %s: router: %w", name, err)
	}
	c := &Contract{Name: name, Doc: doc, router: router}
	contracts[name] = c
	return c, nil
}

// MustContract is LoadContract for the embedded descriptions, which are known good.
func MustContract(name string) *Contract {
	c, err := LoadContract(name)
	if err != nil {
		panic(err)
	}
	return c
}

// Validate checks r (method, path, parameters, credentials and body) against the
// description; nil means the request keeps the contract. r's body is read and restored.
func (c *Contract) Validate(r *http.Request) error {
	route, params, err := c.router.FindRoute(r)
	if err != nil {
		return fmt.Errorf("%s contract: %s %s: %w", c.Name, r.Method, r.URL.Path, err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{MultiError: true, AuthenticationFunc: authenticate,
			// Name the field and the reason, not the whole schema and body.
			SchemaValidationOptions: append(c.Doc.GetSchemaValidationOptions(), openapi3.DisableSchemaErrorDetails())},
	}
	if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
		return fmt.Errorf("%s contract: %s %s: %w", c.Name, r.Method, r.URL.Path, err)
	}
	return nil
}

// authenticate checks that the credentials the security scheme names are present and of
// the right kind (their values are the test's business).
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	if s == nil || s.Type != "http" {
		return fmt.Errorf("unsupported security scheme")
	}
	r := in.RequestValidationInput.Request
	switch strings.ToLower(s.Scheme) {
	case "bearer":
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || strings.TrimSpace(tok) == "" {
			return errors.New("no bearer token in Authorization")
		}
	case "basic":
		user, pass, ok := r.BasicAuth()
		if !ok || user == "" || pass == "" {
			return errors.New("no basic credentials in Authorization")
		}
	default:
		return fmt.Errorf("unsupported http scheme %q", s.Scheme)
	}
	return nil
}
