package main

import (
	"fmt"
	"io"
	"net/url"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"
)

// sbomInput is what the SBOM says beyond the build info.
type sbomInput struct {
	name      string // loop_VERSION_OS_ARCH
	version   string
	binSHA256 string
	created   time.Time
}

const noAssertion = "NOASSERTION"

// sbomDoc describes a loop binary as an SPDX 2.3 document: the loop package
// (the binary, with its SHA-256) depends on the Go standard library and on
// each module its build info lists, with the version that was linked (the
// replacement's, when a replace directive applied). Licenses are not in the
// build info, so they are NOASSERTION. Nothing in it depends on the time or
// machine of the build.
func sbomDoc(info *debug.BuildInfo, in sbomInput) *spdx.Document {
	ids := map[common.ElementID]bool{}
	id := func(name, version string) common.ElementID {
		base := common.ElementID("Package-" + spdxIDChars.ReplaceAllString(name+"-"+version, "-"))
		e := base
		for i := 2; ids[e]; i++ {
			e = common.ElementID(fmt.Sprintf("%s-%d", base, i))
		}
		ids[e] = true
		return e
	}
	pkg := func(name, version, purl string) *spdx.Package {
		return &spdx.Package{
			PackageName:             name,
			PackageSPDXIdentifier:   id(name, version),
			PackageVersion:          version,
			PackageDownloadLocation: noAssertion,
			PackageLicenseConcluded: noAssertion,
			PackageLicenseDeclared:  noAssertion,
			PackageCopyrightText:    noAssertion,
			PackageExternalReferences: []*spdx.PackageExternalReference{{
				Category: common.CategoryPackageManager,
				RefType:  common.TypePackageManagerPURL,
				Locator:  purl,
			}},
		}
	}

	main := pkg(info.Main.Path, in.version, goPURL(info.Main.Path, in.version))
	main.PackageFileName = "loop"
	main.PrimaryPackagePurpose = "APPLICATION"
	main.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: in.binSHA256}}
	main.PackageComment = "the loop binary of " + in.name + ", built with " + info.GoVersion
	packages := []*spdx.Package{main}

	std := pkg("stdlib", info.GoVersion, goPURL("stdlib", info.GoVersion))
	std.PackageComment = "the Go standard library and runtime linked into loop"
	packages = append(packages, std)

	for _, m := range info.Deps {
		path, version, comment := m.Path, m.Version, ""
		if r := m.Replace; r != nil {
			path, version = r.Path, r.Version
			comment = fmt.Sprintf("replaces %s %s", m.Path, m.Version)
		}
		p := pkg(path, version, goPURL(path, version))
		p.PackageComment = comment
		packages = append(packages, p)
	}

	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      in.name,
		DocumentNamespace: "https://github.com/loop-dev/loop/spdx/" + in.name + "-" + in.binSHA256,
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: "loop-internal-release"}},
			Created:  in.created.UTC().Format(time.RFC3339),
		},
		Packages: packages,
		Relationships: []*spdx.Relationship{{
			RefA:         common.MakeDocElementID("", "DOCUMENT"),
			RefB:         common.MakeDocElementID("", string(main.PackageSPDXIdentifier)),
			Relationship: common.TypeRelationshipDescribe,
		}},
	}
	for _, p := range packages[1:] {
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA:         common.MakeDocElementID("", string(main.PackageSPDXIdentifier)),
			RefB:         common.MakeDocElementID("", string(p.PackageSPDXIdentifier)),
			Relationship: common.TypeRelationshipDependsOn,
		})
	}
	return doc
}

// spdxIDChars are the characters an SPDX element ID may not hold.
var spdxIDChars = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// goPURL is the package URL of a Go module (or the standard library) at a
// version: pkg:golang/PATH@VERSION, the version percent-encoded.
func goPURL(path, version string) string {
	p := "pkg:golang/" + path
	if version != "" {
		p += "@" + strings.ReplaceAll(url.PathEscape(version), "+", "%2B")
	}
	return p
}

func encodeSBOM(w io.Writer, doc *spdx.Document) error {
	return spdxjson.Write(doc, w, spdxjson.Indent("  "))
}
