// Starts the official DynamoDB Local bound to 127.0.0.1 only.
//
// DynamoDB Local's own `main` builds a Jetty `Server(port)`, which listens on every interface and
// has no option to change that. This launcher lets DynamoDB Local parse its usual command line and
// build its server, then sets the host of the Jetty connector to the loopback address before
// starting it. Run with Java's single-file source launcher:
//
//   java -cp DynamoDBLocal.jar:DynamoDBLocal_lib/* -Djava.library.path=DynamoDBLocal_lib \
//        LoopbackDynamoDBLocal.java -port 8000 -sharedDb -disableTelemetry
import java.lang.reflect.Field;

import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public class LoopbackDynamoDBLocal {
    public static void main(String[] args) throws Exception {
        String host = System.getProperty("dynamodb.host", "127.0.0.1");
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server jetty = (Server) field.get(proxy);
        for (Connector connector : jetty.getConnectors()) {
            ((ServerConnector) connector).setHost(host);
        }
        proxy.start();
        System.out.println("DynamoDB Local listening on " + host);
        proxy.join();
    }
}
