"""The webapp-platform components for every Pulumi language: `pulumi package add <this directory>` in a YAML,
TypeScript, Go, C# or Java program, which then declares `webapp:index:AppService` resources. Python's component
provider host infers the package's schema from the components' type annotations."""

from pulumi.provider.experimental import component_provider_host

from webapp_platform.components.app_service import PROVIDER_NAME, PROVIDER_VERSION, AppService

if __name__ == "__main__":
    component_provider_host([AppService], name=PROVIDER_NAME, version=PROVIDER_VERSION)
